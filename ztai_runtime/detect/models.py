"""Behavioural models: each principal's (and each API client's) normal, learned online, and the
events that depart from it. docs/detection-models.md explains each model, its thresholds, what it
catches and what it cannot.

`Behaviour(settings, geo)` is one detector (name "behaviour") holding every model. For each event
it first judges the event against what it has learned, then learns from it. There is no training
step: the first `baseline_days` of event time (from the first event it sees) are the baseline, in
which every model learns and none signals. After that, a principal's own models judge only once it
has `min_events` events and has been seen for `min_age_days` (its warm-up); until then only the
absolute checks apply (the volume floors, failure bursts, credentials outside AWS, IAM user keys,
and the principal being new).

The models (rule ids `model:<kind>`):
- `rate`: calls of one action per 10 minutes against this principal's normal for that action;
- `volume`: objects and bytes read from an S3 bucket, items read from the token vault, secrets
  and decrypted parameters read, per clock hour, against this principal's normal for that store
  (and absolute floors for a principal or store with no normal yet);
- `new-network`: a /24 (IPv4) or /48 (IPv6) new for this principal and for its role's other
  sessions; with an IP database, a new ASN or country raises the severity;
- `rare-hour`: many calls in an hour of the day in which this principal is almost never active;
- `new-agent`: a user agent family (versions removed) new for the principal and its role;
- `instance-credentials-outside`: an instance's role credentials used from a public address with
  no VPC endpoint (stolen from the metadata service and used elsewhere); `imdsv1`: credentials
  delivered by IMDSv1 when the fleet requires IMDSv2; `outside-endpoints`: a principal that always
  came through VPC endpoints calling from a public address without one;
- `new-action`: an API (or a whole service) new for the principal and its role after its warm-up;
  `failures`: a burst of failed calls (AccessDenied, UnauthorizedOperation, ...);
- `new-principal`: a principal first seen after the baseline; `long-term-key`: an IAM user's
  long-term access key (AKIA...) used after the baseline, which this architecture never issues.

Forgetting: rates, volumes and the hour-of-day histogram decay with `half_life_days` of event
time; a seen-set entry (network, agent, action, ASN, country) not seen for `seen_expiry_days` is
new again. Every map is bounded (least recently used entries evicted): `max_principals`
principals, and per principal `max_items` entries per seen-set or per-action map, so the state
stays bounded however long the stream runs.

Severities: a single deviation is `low` (novelty) or `medium` (a burst, a volume, a failure burst,
an API new for the role); credentials used outside AWS, an IAM user key new after the baseline,
and any deviation coming within an hour of a different one for the same principal are `high`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from ztai_runtime.detect.features import AGENT_CACHE, ORIGIN_CACHE, Stat, agent_family, origin
from ztai_runtime.detect.geo import GeoLookup
from ztai_runtime.detect.signals import Signal, remember
from ztai_runtime.detect.sources import Event

STATE_VERSION = 1
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
RATE_WINDOW_MS = 600_000  # the rate model's window: 10 minutes
COMBINE_MS = HOUR_MS  # deviations of different kinds this close together make a high finding
# A seen-set entry's time is rewritten (and the entry moved to the recent end of the LRU) at most
# this often: a dict delete and insert on every event would cost more than the lookup itself.
TOUCH_MS = HOUR_MS
_INF = math.inf

# Error codes of a call refused for want of permission (not throttling, not a missing resource).
_DENIED = frozenset(("AccessDenied", "AccessDeniedException", "UnauthorizedOperation",
                     "Client.UnauthorizedOperation", "UnauthorizedAccess", "AuthorizationError",
                     "Client.AuthFailure", "AuthFailure", "InvalidClientTokenId",
                     "UnrecognizedClientException", "SignatureDoesNotMatch", "ExpiredToken",
                     "ExpiredTokenException", "NotAuthorized", "Forbidden",
                     "401", "403"))  # the API gateway's refusals, by HTTP status
# Reads of secret material: Secrets Manager values and SSM parameters read with decryption.
_SECRET_READS = frozenset(("GetSecretValue", "BatchGetSecretValue"))
_PARAMETER_READS = frozenset(("GetParameter", "GetParameters", "GetParametersByPath",
                              "GetParameterHistory"))
_VAULT_READS = frozenset(("GetItem", "BatchGetItem", "Query", "Scan"))
_VOLUME_SOURCES = frozenset(("s3.amazonaws.com", "secretsmanager.amazonaws.com", "ssm.amazonaws.com",
                             "dynamodb.amazonaws.com"))
_MISS: Any = object()


@dataclass(frozen=True, slots=True)
class ModelSettings:
    """The models' parameters (defaults measured on the evaluation data, docs/detection-models.md)."""

    baseline_days: float = 7.0
    """Event time from the first event during which the models learn and never signal."""
    half_life_days: float = 14.0
    """Rates, volumes and the hour histogram: an observation's weight halves in this much time."""
    seen_expiry_days: float = 45.0
    """A network, agent, action, ASN or country not seen for this long is new again."""
    min_events: int = 100
    """A principal's own models judge only after this many of its events..."""
    min_age_days: float = 2.0
    """...and this long after its first event."""
    min_windows: float = 5.0
    """A rate or volume normal is used only when it rests on this many (decayed) active windows."""
    sigmas: float = 6.0
    """A burst is above mean + sigmas x std (std at least sqrt(mean) and 1: Poisson noise)..."""
    factor: float = 4.0
    """...and above factor x mean."""
    rate_min: int = 30
    """Calls of one action in 10 minutes below which no rate burst is flagged."""
    volume_min_objects: int = 100
    """Objects (or vault items) in an hour below which a learned principal is not flagged."""
    volume_min_secrets: int = 10
    """Secrets in an hour below which a learned principal is not flagged."""
    floor_objects: int = 500
    """Objects read from one bucket in an hour that flag a principal with no normal for it."""
    floor_bytes: int = 50 * 2**30
    """Bytes read from one bucket in an hour that flag a principal with no normal for it."""
    floor_vault_items: int = 1000
    """Vault items read in an hour that flag a principal with no normal for them."""
    floor_secrets: int = 20
    """Secrets or decrypted parameters read in an hour that flag a principal with no normal."""
    rare_hour_share: float = 0.005
    """An hour of the day holding less than this share of a principal's activity is rare..."""
    rare_hour_events: int = 10
    """...and this many calls in one such hour are flagged."""
    failures_min: int = 10
    """Failed calls in 10 minutes below which no failure burst is flagged."""
    endpoint_share: float = 0.995
    """A principal with at least this share of its calls through VPC endpoints (and min_events
    of them) is flagged calling from a public address without one."""
    require_imdsv2: bool = True
    """The fleet's launch template requires IMDSv2: credentials delivered by IMDSv1 are a signal."""
    vault_tables: tuple[str, ...] = ("token-vault",)
    """DynamoDB tables whose reads are vault reads: a table name containing one of these."""
    max_principals: int = 2000
    """Principals kept (least recently active evicted)."""
    max_items: int = 128
    """Entries per seen-set, per-action rate map and per-store volume map of one principal."""

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "vault_tables":
                if not isinstance(value, tuple) or not all(isinstance(v, str) and v for v in value):
                    raise ValueError(f"model setting vault_tables must be a tuple of non-empty table name "
                                     f"parts, not {value!r}")
                continue
            if item.name == "require_imdsv2":
                if not isinstance(value, bool):
                    raise ValueError(f"model setting require_imdsv2 must be true or false, not {value!r}")
                continue
            if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                    or value < 0):
                raise ValueError(f"model setting {item.name} must be a number >= 0, not {value!r}")
        for name in ("half_life_days", "seen_expiry_days", "max_principals", "max_items"):
            if getattr(self, name) <= 0:
                raise ValueError(f"model setting {name} must be above 0, not {getattr(self, name)!r}")
        if not 0 < self.endpoint_share <= 1 or not 0 <= self.rare_hour_share < 1:
            raise ValueError("model settings endpoint_share must be in (0, 1] and rare_hour_share in [0, 1)")


class _Window:
    """Counts of the current window of one rate or volume key, and the normal of past windows."""

    __slots__ = ("count", "flagged", "judged", "limit", "size", "size_limit", "size_stat", "stat", "window")

    def __init__(self) -> None:
        self.window = -1
        self.count = 0
        self.size = 0
        self.flagged = False
        self.limit = _INF
        self.size_limit = _INF
        self.judged = False
        self.stat = Stat()
        self.size_stat = Stat()


class _Principal:
    """What is learned about one principal."""

    __slots__ = (
        "actions",
        "agents",
        "asns",
        "countries",
        "direct_w",
        "endpoint_w",
        "events",
        "fails",
        "first",
        "hour",
        "hour_base",
        "hour_count",
        "hours",
        "hours_day",
        "hours_total",
        "instance_nets",
        "last",
        "links_t",
        "networks",
        "rates",
        "recent",
        "role",
        "services",
        "volumes",
    )

    def __init__(self, first: int, role: str | None) -> None:
        self.first = first
        self.last = first
        self.events = 0
        self.role = role
        self.rates: dict[str, _Window] = {}
        self.volumes: dict[str, _Window] = {}
        self.networks: dict[str, int] = {}
        self.asns: dict[str, int] = {}
        self.countries: dict[str, int] = {}
        self.agents: dict[str, int] = {}
        self.actions: dict[str, int] = {}
        self.services: dict[str, int] = {}
        self.hours = [0.0] * 24
        self.hours_total = 0.0
        self.hours_day = first // DAY_MS
        self.hour = -1
        self.hour_count = 0
        self.hour_base = 0.0
        self.endpoint_w = 0.0
        self.direct_w = 0.0
        self.links_t = first // DAY_MS
        self.instance_nets: dict[str, int] = {}
        self.fails = _Window()
        self.recent: dict[str, int] = {}


class _Role:
    """What the sessions of one role share: a value new to a person but used by their peers on the
    same role is not new (a curator's first CLI call when the others use the CLI too)."""

    __slots__ = ("actions", "agents", "hours", "hours_day", "hours_total", "networks", "services")

    def __init__(self) -> None:
        self.networks: dict[str, int] = {}
        self.agents: dict[str, int] = {}
        self.actions: dict[str, int] = {}
        self.services: dict[str, int] = {}
        self.hours = [0.0] * 24
        self.hours_total = 0.0
        self.hours_day = 0


def _role_of(principal: str) -> str | None:
    """The role of a per-session principal (`arn:...:role/R/session` -> `arn:...:role/R`)."""
    marker = principal.find(":role/")
    if marker < 0:
        return None
    head, sep, _ = principal.rpartition("/")
    return head if sep and head.find("/", marker + 6) < 0 and len(head) > marker + 6 else None


def _seen(table: dict[str, int], key: str, now: int, expiry: int, cap: int) -> bool:
    """Whether `key` was seen within `expiry` before `now`; records it as seen now (LRU-bounded)."""
    last = table.get(key)
    if last is not None and now - last < TOUCH_MS:
        return True
    if last is not None:
        del table[key]
    elif len(table) >= cap:
        del table[next(iter(table))]
    table[key] = now
    return last is not None and now - last <= expiry


def _decay_hours(holder: _Principal | _Role, day: int, half: float) -> None:
    """The hour histogram's daily decay (once a day per holder, not per event)."""
    decay = math.exp2(-(day - holder.hours_day) * DAY_MS / half)
    holder.hours = [v * decay for v in holder.hours]
    holder.hours_total *= decay
    holder.hours_day = day


def _fmt_bytes(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:,.0f} {unit}" if unit == "B" else f"{size:,.1f} {unit}"
        size /= 1000
    return f"{size:,.1f} TB"  # pragma: no cover (the loop returns)


def _normal(stat: Stat, what: str = "", scale: str = "") -> str:
    if what == "bytes":
        return f"{_fmt_bytes(stat.mean)} ± {_fmt_bytes(stat.std)}"
    return f"{stat.mean:,.0f} ± {stat.std:,.0f}{scale}"


class Behaviour:
    """The behavioural models as one engine detector (see the module docstring)."""

    name = "behaviour"

    def __init__(self, settings: ModelSettings = ModelSettings(), geo: GeoLookup | None = None) -> None:
        self.settings = settings
        self.geo = geo
        self.start: int | None = None
        self.baseline_end = 0
        self.principals: dict[str, _Principal] = {}
        self.roles: dict[str, _Role] = {}
        self.keys: dict[str, int] = {}  # long-term access keys seen in the baseline
        s = settings
        self._half = s.half_life_days * DAY_MS
        self._expiry = int(s.seen_expiry_days * DAY_MS)
        self._min_age = int(s.min_age_days * DAY_MS)
        self._min_events = s.min_events
        self._rare_events = s.rare_hour_events
        self._rare_share = s.rare_hour_share
        self._cap = int(s.max_items)
        self._actions: dict[str, dict[str, str]] = {}

    # -- the detector protocol ------------------------------------------------------------------

    def observe(self, event: Event, principal: str) -> list[Signal]:
        """Judge `event` against what was learned of `principal`, then learn from it."""
        t = event.time_ms
        if self.start is None:
            self.start = t
            self.baseline_end = t + int(self.settings.baseline_days * DAY_MS)
        live = t >= self.baseline_end
        out: list[Signal] = []
        p = self.principals.get(principal)
        if p is None:
            role_known = (role_name := _role_of(principal)) is not None and role_name in self.roles
            p = self._new_principal(principal, t, role_name)
            if live:
                self._new_principal_signal(out, p, event, principal, t, role_known)
        else:
            if t - p.last >= TOUCH_MS:  # keep the LRU order by activity, not on every event
                del self.principals[principal]
                self.principals[principal] = p
            if t > p.last:
                p.last = t
        p.events += 1
        judged = live and p.events > self._min_events and t - p.first >= self._min_age
        record = event.record
        role = self.roles.get(p.role) if p.role is not None else None
        if event.kind == "cloudtrail":
            self._cloudtrail(out, p, role, principal, record, t, live, judged)
        else:
            self._other(out, p, principal, event, t, live, judged)
        self._hour(out, p, role, principal, t, judged)
        return out

    def to_state(self) -> dict[str, Any]:
        """What was learned, JSON-safe (see `from_state`)."""
        return {
            "version": STATE_VERSION, "start": self.start, "keys": dict(self.keys),
            "principals": {name: _principal_state(p) for name, p in self.principals.items()},
            "roles": {name: {"networks": r.networks, "agents": r.agents, "actions": r.actions,
                             "services": r.services, "hours": list(r.hours),
                             "hoursTotal": r.hours_total, "hoursDay": r.hours_day}
                      for name, r in self.roles.items()},
            "settings": _settings_state(self.settings)}

    @classmethod
    def from_state(cls, data: Mapping[str, Any], settings: ModelSettings = ModelSettings(),
                   geo: GeoLookup | None = None) -> Behaviour:
        """The detector `to_state` saved; ValueError naming the problem when `data` is not one."""
        if not isinstance(data, Mapping):
            raise ValueError(f"behaviour state must be an object, not {type(data).__name__}")
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"behaviour state version {data.get('version')!r} is not {STATE_VERSION}: "
                             "start from no state")
        model = cls(settings, geo)
        start = data.get("start")
        if start is not None and (not isinstance(start, int) or isinstance(start, bool)):
            raise ValueError(f"behaviour state: start must be epoch milliseconds or null, not {start!r}")
        model.start = start
        if start is not None:
            model.baseline_end = start + int(settings.baseline_days * DAY_MS)
        model.keys = _times(data.get("keys"), "keys")
        principals = data.get("principals")
        if not isinstance(principals, Mapping):
            raise ValueError("behaviour state: principals must be an object of principal -> state")
        for name, item in principals.items():
            try:
                model.principals[name] = _principal_from(item, name)
            except (ValueError, TypeError, KeyError, IndexError) as error:
                raise ValueError(f"behaviour state: principal {name!r}: {error}") from None
        roles = data.get("roles")
        if not isinstance(roles, Mapping):
            raise ValueError("behaviour state: roles must be an object of role -> seen-sets")
        for name, item in roles.items():
            if not isinstance(item, Mapping):
                raise ValueError(f"behaviour state: role {name!r} must be an object")
            role = _Role()
            for part in ("networks", "agents", "actions", "services"):
                setattr(role, part, _times(item.get(part), f"role {name!r} {part}"))
            hours = item.get("hours")
            if not isinstance(hours, list) or len(hours) != 24:
                raise ValueError(f"behaviour state: role {name!r} hours must be a list of 24 numbers")
            try:
                role.hours = [float(_number(v, "an hour's weight")) for v in hours]
                role.hours_total = float(_number(item.get("hoursTotal"), "hoursTotal"))
                role.hours_day = _number(item.get("hoursDay"), "hoursDay", integer=True)
            except ValueError as error:
                raise ValueError(f"behaviour state: role {name!r}: {error}") from None
            model.roles[name] = role
        return model

    # -- per kind of record ---------------------------------------------------------------------

    def _new_principal(self, principal: str, t: int, role: str | None) -> _Principal:
        if len(self.principals) >= self.settings.max_principals:
            del self.principals[next(iter(self.principals))]
        p = _Principal(t, role)
        self.principals[principal] = p
        if p.role is not None and p.role not in self.roles:
            if len(self.roles) >= self.settings.max_principals:
                del self.roles[next(iter(self.roles))]
            self.roles[p.role] = _Role()
        return p

    def _new_principal_signal(self, out: list[Signal], p: _Principal, event: Event, principal: str,
                              t: int, known_role: bool) -> None:
        record = event.record
        identity = record.get("userIdentity") if event.kind == "cloudtrail" else None
        kind = identity.get("type") if isinstance(identity, dict) else None
        if kind in ("IAMUser", "Root"):
            what = ("an IAM user" if kind == "IAMUser" else "the account's root user")
            reason = (f"{principal} first seen after the baseline, and it is {what}: this architecture "
                      "has no IAM users and never uses root (people and machines use roles)")
            self._emit(out, p, principal, "new-principal", "high", reason, "", t)
            return
        mfa = (isinstance(identity, dict) and isinstance(identity.get("sessionContext"), dict)
               and (identity["sessionContext"].get("attributes") or {}).get("mfaAuthenticated") == "true")
        if known_role:
            # A person new on a role others use (a new team member, a first elevation): low.
            reason = f"{principal} first seen after the baseline (a new session of a role already in use)"
            self._emit(out, p, principal, "new-principal", "informational" if mfa else "low", reason, "", t)
        else:
            reason = (f"{principal} first seen after the baseline: no session of this principal or its role "
                      f"was seen before{' (signed in with MFA)' if mfa else ''}")
            # With MFA, a person the identity provider vouched for (the on-call's first elevation):
            # informational; without, a role never seen acting (a machine, a new trust): medium.
            severity = "informational" if mfa else "medium"
            self._emit(out, p, principal, "new-principal", severity, reason, "", t)

    def _cloudtrail(self, out: list[Signal], p: _Principal, role: _Role | None, principal: str,
                    record: dict[str, Any],
                    t: int, live: bool, judged: bool) -> None:
        source = record.get("eventSource")
        name = record.get("eventName")
        if not isinstance(source, str) or not isinstance(name, str):
            return
        names = self._actions.get(source)
        if names is None:
            names = self._actions[source] = {}
        action = names.get(name)
        if action is None:
            action = remember(names, name, f"{source.partition('.')[0]}:{name}", 4096)
        # New API or service for the principal and its role. The fast path: an action this
        # principal called within TOUCH_MS is neither new nor due for a refresh of its seen time.
        last = p.actions.get(action)
        if last is None or t - last >= TOUCH_MS:
            self._actions_seen(out, p, role, principal, record, source, action, t, judged)
        # Rate per action; the fast path: the action's current window is open.
        w = p.rates.get(action)
        if w is not None and w.window == t // RATE_WINDOW_MS:
            w.count += 1
            if judged and w.count > w.limit:
                self._rate_signal(out, p, principal, action, w, t)
        else:
            self._rate(out, p, principal, action, t, judged)
        # Failures.
        error = record.get("errorCode")
        if error is not None:
            self._failure(out, p, principal, str(error), action, t, live)
        identity = record.get("userIdentity")
        if not isinstance(identity, dict):
            identity = {}
        key = identity.get("accessKeyId")
        if isinstance(key, str) and key[:4] == "AKIA":
            self._long_term_key(out, p, principal, key, identity, t, live)
        # Network, endpoint, instance credentials.
        address = record.get("sourceIPAddress")
        net = ORIGIN_CACHE.get(address, _MISS) if isinstance(address, str) else None
        if net is _MISS:
            net = origin(address)
        agent = record.get("userAgent")
        if net is not None:
            # The fast path: a call through an endpoint, from a network this principal used within
            # TOUCH_MS, by no instance, on a day whose decay is done: only the endpoint count moves.
            endpoint = record.get("vpcEndpointId")
            principal_id = identity.get("principalId")
            last = p.networks.get(net[0])
            if (endpoint and last is not None and t - last < TOUCH_MS and t // DAY_MS <= p.links_t
                    and not (isinstance(principal_id, str) and ":i-" in principal_id)):
                p.endpoint_w += 1.0
            else:
                lambda_call = isinstance(agent, str) and "exec-env/AWS_Lambda" in agent
                self._network(out, p, role, principal, identity, record, address, net, t, live, judged,
                              lambda_call)
        # User agent.
        family = AGENT_CACHE.get(agent) if isinstance(agent, str) else None
        if family is None:
            family = agent_family(agent)
        if family is not None:
            last = p.agents.get(family)
            if last is None or t - last >= TOUCH_MS:
                new_agent = not _seen(p.agents, family, t, self._expiry, self._cap)
                if role is not None:
                    new_agent = not _seen(role.agents, family, t, self._expiry, self._cap) and new_agent
                if judged and new_agent:
                    self._emit(out, p, principal, "new-agent", "low",
                               f"{principal} used a client new for it and its role: {family} "
                               f"(user agent {str(agent)[:80]!r})", family, t)
        # Data volume.
        if source in _VOLUME_SOURCES:
            self._volume_event(out, p, principal, record, source, name, t, live, judged)

    def _actions_seen(self, out: list[Signal], p: _Principal, role: _Role | None, principal: str,
                      record: dict[str, Any], source: str, action: str, t: int, judged: bool) -> None:
        service = source
        new_service = not _seen(p.services, service, t, self._expiry, self._cap)
        new_action = not _seen(p.actions, action, t, self._expiry, self._cap)
        if role is not None:
            role_service = _seen(role.services, service, t, self._expiry, self._cap)
            role_action = _seen(role.actions, action, t, self._expiry, self._cap)
            new_service = new_service and not role_service
            new_action = new_action and not role_action
        if judged and new_action:
            if new_service:
                self._emit(out, p, principal, "new-action", "medium",
                           f"{principal} called {action}, its first call to {source} (new for this principal "
                           "and its role after its warm-up)", service, t)
            else:
                read_only = record.get("readOnly")
                severity = "low" if read_only is True or read_only == "true" else "medium"
                self._emit(out, p, principal, "new-action", severity,
                           f"{principal} called {action} for the first time (new for this principal and its "
                           "role after its warm-up)", service, t)

    def _volume_event(self, out: list[Signal], p: _Principal, principal: str, record: dict[str, Any],
                      source: str, name: str, t: int, live: bool, judged: bool) -> None:
        s = self.settings
        if source == "s3.amazonaws.com":
            if name == "GetObject":
                params = record.get("requestParameters")
                bucket = params.get("bucketName") if isinstance(params, dict) else None
                if isinstance(bucket, str):
                    data = record.get("additionalEventData")
                    size = data.get("bytesTransferredOut") if isinstance(data, dict) else None
                    size = int(size) if isinstance(size, (int, float)) and size > 0 else 0
                    self._volume(out, p, principal, f"s3:{bucket}", 1, size, t, live, judged)
        elif source == "secretsmanager.amazonaws.com":
            if name in _SECRET_READS and record.get("errorCode") is None:
                params = record.get("requestParameters")
                count = 1
                if name == "BatchGetSecretValue" and isinstance(params, dict):
                    ids = params.get("secretIdList")
                    # A filter instead of a list reads up to maxResults (20 by default) secrets.
                    most = params.get("maxResults")
                    count = len(ids) if isinstance(ids, list) and ids else (
                        most if isinstance(most, int) and not isinstance(most, bool) and most > 0 else 20)
                self._volume(out, p, principal, "secrets", count, 0, t, live, judged)
        elif source == "ssm.amazonaws.com":
            if name in _PARAMETER_READS and record.get("errorCode") is None:
                params = record.get("requestParameters")
                if isinstance(params, dict) and params.get("withDecryption") in (True, "true"):
                    names_read = params.get("names")
                    count = len(names_read) if isinstance(names_read, list) and names_read else 1
                    self._volume(out, p, principal, "secrets", count, 0, t, live, judged)
        elif source == "dynamodb.amazonaws.com" and name in _VAULT_READS:
            params = record.get("requestParameters")
            table = params.get("tableName") if isinstance(params, dict) else None
            count = 1
            if table is None and isinstance(params, dict) and isinstance(params.get("requestItems"), dict):
                items = params["requestItems"]
                table = next(iter(items), None)
                keys = items.get(table) if table is not None else None
                keys = keys.get("keys") if isinstance(keys, dict) else None
                count = len(keys) if isinstance(keys, list) and keys else 1
            if isinstance(table, str) and any(part in table for part in s.vault_tables):
                self._volume(out, p, principal, f"vault:{table}", count, 0, t, live, judged)

    def _other(self, out: list[Signal], p: _Principal, principal: str, event: Event, t: int, live: bool,
               judged: bool) -> None:
        """Gateway, inference, JIT and OCSF events: rate per action, network and client family
        (gateway), failed calls (gateway 4xx)."""
        record = event.record
        if event.kind == "gateway":
            action = f"api:{record.get('routeKey')}"
            address = record.get("sourceIp")
            net = origin(address)
            if net is not None:
                self._network(out, p, None, principal, {}, record, address, net, t, live, judged, False)
            family = agent_family(record.get("userAgent"))
            if family is not None and not _seen(p.agents, family, t, self._expiry, self._cap) and judged:
                self._emit(out, p, principal, "new-agent", "low",
                           f"{principal} used a client new for it: {family}", family, t)
            status = record.get("status")
            try:
                code = int(status) if status is not None else 0
            except (TypeError, ValueError):
                code = 0
            if code in (401, 403):
                self._failure(out, p, principal, str(code), action, t, live)
        elif event.kind == "inference":
            action = f"inference:{record.get('model')}"
        else:
            action = f"{event.kind}:{record.get('event') or record.get('class_uid')}"
        self._rate(out, p, principal, action, t, judged)

    # -- the models -----------------------------------------------------------------------------

    def _limit(self, stat: Stat, minimum: float) -> float:
        s = self.settings
        spread = max(stat.std, math.sqrt(max(stat.mean, 0.0)), 1.0)
        return max(stat.mean + s.sigmas * spread, s.factor * stat.mean, minimum)

    def _rate(self, out: list[Signal], p: _Principal, principal: str, action: str, t: int,
              judged: bool) -> None:
        window = t // RATE_WINDOW_MS
        w = p.rates.get(action)
        if w is None:
            if len(p.rates) >= self._cap:
                del p.rates[next(iter(p.rates))]
            w = p.rates[action] = _Window()
            w.window = window
        elif w.window < window:
            # Learn the closed window, clipped at its limit: a burst must not become the normal.
            # (An event older than the open window, which a stream can deliver late, counts in the
            # open window: windows are never reopened.)
            w.stat.update(min(w.count, w.limit), w.window * RATE_WINDOW_MS, self._half)
            del p.rates[action]  # most recently used last: the LRU order
            p.rates[action] = w
            w.window = window
            w.count = 0
            w.flagged = False
            enough = w.stat.weight(t, self._half) >= self.settings.min_windows
            w.limit = self._limit(w.stat, self.settings.rate_min) if enough else _INF
        w.count += 1
        if judged and w.count > w.limit:
            self._rate_signal(out, p, principal, action, w, t)

    def _rate_signal(self, out: list[Signal], p: _Principal, principal: str, action: str, w: _Window,
                     t: int) -> None:
        self._emit(out, p, principal, "rate", "medium",
                   f"{principal}: {w.count} {action} calls in 10 min; normal for this principal is "
                   f"{_normal(w.stat)} per active 10 min", action, t)

    def _volume(self, out: list[Signal], p: _Principal, principal: str, store: str, count: int,
                size: int, t: int, live: bool, judged: bool) -> None:
        s = self.settings
        window = t // HOUR_MS
        w = p.volumes.get(store)
        if w is None:
            if len(p.volumes) >= self._cap:
                del p.volumes[next(iter(p.volumes))]
            w = p.volumes[store] = _Window()
            w.window = -1
        if w.window < window:
            if w.window >= 0:
                w.stat.update(min(w.count, w.limit), w.window * HOUR_MS, self._half)
                w.size_stat.update(min(w.size, w.size_limit), w.window * HOUR_MS, self._half)
                del p.volumes[store]  # most recently used last: the LRU order
                p.volumes[store] = w
            w.window = window
            w.count = 0
            w.size = 0
            w.flagged = False
            secrets = store == "secrets"
            w.judged = judged and w.stat.weight(t, self._half) >= s.min_windows
            if w.judged:
                w.limit = self._limit(w.stat, s.volume_min_secrets if secrets else s.volume_min_objects)
                w.size_limit = _INF if secrets or store.startswith("vault:") else self._limit(
                    w.size_stat, s.floor_bytes / 50)
            else:
                w.limit = float(s.floor_secrets if secrets else s.floor_vault_items
                                if store.startswith("vault:") else s.floor_objects)
                w.size_limit = _INF if secrets or store.startswith("vault:") else float(s.floor_bytes)
        w.count += count
        w.size += size
        if live and (w.count >= w.limit or w.size >= w.size_limit):
            w.flagged = True
            if store == "secrets":
                what = f"read {w.count:,} secrets or decrypted parameters in 1 h"
            elif store.startswith("vault:"):
                what = f"read {w.count:,} items from the token vault {store[6:]} in 1 h"
            else:
                what = f"read {w.count:,} objects ({_fmt_bytes(w.size)}) from {store[3:]} in 1 h"
            if w.judged:
                normal = f"normal for this principal is {_normal(w.stat)}"
                if w.size:
                    normal += f" objects ({_normal(w.size_stat, 'bytes')}) per active hour"
                else:
                    normal += " per active hour"
            else:
                normal = "this principal has no normal for it yet, and that is above the floor of " + (
                    f"{w.limit:,.0f}" if w.count >= w.limit else _fmt_bytes(w.size_limit))
            self._emit(out, p, principal, "volume", "medium", f"{principal} {what}; {normal}", store, t)

    def _failure(self, out: list[Signal], p: _Principal, principal: str, error: str, action: str,
                 t: int, live: bool) -> None:
        if error not in _DENIED and not error.endswith(("AccessDenied", "UnauthorizedOperation")):
            return
        s = self.settings
        w = p.fails
        window = t // RATE_WINDOW_MS
        if w.window < window:
            if w.window >= 0:
                w.stat.update(min(w.count, w.limit), w.window * RATE_WINDOW_MS, self._half)
            w.window = window
            w.count = 0
            enough = w.stat.weight(t, self._half) >= s.min_windows
            w.limit = self._limit(w.stat, s.failures_min) if enough else float(s.failures_min)
        w.count += 1
        if live and w.count >= w.limit:
            normal = (f"normal for this principal is {_normal(w.stat)} per 10 min with failures"
                      if w.stat.weight(t, self._half) >= s.min_windows else
                      f"the floor is {s.failures_min} in 10 min")
            self._emit(out, p, principal, "failures", "medium",
                       f"{principal}: {w.count} calls refused in 10 min (last: {action} {error}); {normal}",
                       "", t)

    def _long_term_key(self, out: list[Signal], p: _Principal, principal: str, key: str,
                       identity: dict[str, Any], t: int, live: bool) -> None:
        if not live:
            self.keys[key] = t
            if len(self.keys) > self.settings.max_principals:
                del self.keys[next(iter(self.keys))]
            return
        known = key in self.keys
        self._emit(out, p, principal, "long-term-key", "medium" if known else "high",
                   f"{principal} used the long-term access key {key} ({identity.get('type', 'IAM user')}): "
                   "this architecture has no IAM users, people and machines use roles"
                   + (" (the key was in use in the baseline)" if known else ""), key, t)

    def _network(self, out: list[Signal], p: _Principal, role: _Role | None, principal: str,
                 identity: dict[str, Any], record: dict[str, Any], address: Any, net: tuple[str, bool],
                 t: int, live: bool, judged: bool, lambda_call: bool) -> None:
        s = self.settings
        prefix, public = net
        endpoint = record.get("vpcEndpointId")
        # Instance credentials: the metadata service names the session after the instance
        # (`AROA...:i-0123...`) and says how it delivered them (ec2RoleDelivery).
        principal_id = identity.get("principalId")
        instance = isinstance(principal_id, str) and ":i-" in principal_id
        if instance:
            context = identity.get("sessionContext")
            delivery = context.get("ec2RoleDelivery") if isinstance(context, dict) else None
            if delivery == "1.0" and s.require_imdsv2 and live:
                self._emit(out, p, principal, "imdsv1", "medium",
                           f"{principal}: instance credentials delivered by IMDSv1 (ec2RoleDelivery 1.0); "
                           "the fleet requires IMDSv2, so these came from an instance outside its launch "
                           "template", "", t)
            if public and not endpoint:
                if not live:
                    _seen(p.instance_nets, prefix, t, self._expiry, self._cap)
                elif prefix not in p.instance_nets:
                    self._emit(out, p, principal, "instance-credentials-outside", "high",
                               f"{principal}: an instance's role credentials used from {address} ({prefix}), "
                               "a public address with no VPC endpoint, never seen for this role's instances "
                               "in the baseline: credentials taken from the instance and used elsewhere",
                               prefix, t)
        # Endpoint habit: decayed counts of calls through an endpoint and from a public address
        # without one (service calls, whose address is a service name, never get here).
        if endpoint or public:
            day = t // DAY_MS
            if day > p.links_t:  # the counts decay once a day (not on every event: exp2 costs)
                decay = math.exp2(-(day - p.links_t) * DAY_MS / self._half)
                p.endpoint_w *= decay
                p.direct_w *= decay
                p.links_t = day
            if endpoint:
                p.endpoint_w += 1.0
            else:
                total = p.endpoint_w + p.direct_w
                share = p.endpoint_w / total if total else 0.0
                if judged and not instance and total >= s.min_events and share >= s.endpoint_share:
                    self._emit(out, p, principal, "outside-endpoints", "medium",
                               f"{principal} called from {address} without a VPC endpoint; "
                               f"{share:.1%} of its recent calls came through one", prefix, t)
                p.direct_w += 1.0
        last = p.networks.get(prefix)
        if last is not None and t - last < TOUCH_MS:
            return
        # Hosted CI runners (web identity) and Lambda functions come from a pool of addresses:
        # their address prefix is no sign of who they are, so prefix novelty is not judged for them.
        # The Lambda marker is only the caller's word (its user agent, which anyone can write), so
        # with an IP database the pool's network still is: credentials of a function or a CI job
        # used from an ASN the principal never called from is the sign of stolen credentials.
        context = identity.get("sessionContext")
        if lambda_call or (isinstance(context, dict) and isinstance(context.get("webIdFederationData"), dict)
                           and context["webIdFederationData"].get("federatedProvider")):
            if self.geo is None or not isinstance(address, str):
                return
            asn, _ = self.geo.lookup(address)
            if asn is None:
                return
            first = not p.asns
            if not _seen(p.asns, asn, t, self._expiry, self._cap) and judged and not first:
                self._emit(out, p, principal, "new-network", "medium",
                           f"{principal} (a function's or CI job's credentials, by its user agent or "
                           f"identity) called from {address}, in network {asn}, new for it", asn, t)
            return
        new_net = not _seen(p.networks, prefix, t, self._expiry, self._cap)
        if role is not None:
            new_net = not _seen(role.networks, prefix, t, self._expiry, self._cap) and new_net
        if not new_net:
            return
        severity = "low"
        detail = ""
        if self.geo is not None and isinstance(address, str):
            asn, country = self.geo.lookup(address)
            news = []
            if asn is not None and not _seen(p.asns, asn, t, self._expiry, self._cap):
                news.append(f"network {asn}")
            if country is not None and not _seen(p.countries, country, t, self._expiry, self._cap):
                news.append(f"country {country}")
            if news and (p.asns or p.countries):
                severity = "medium"
                detail = f", and a {' and '.join(news)} new for it"
            if len(p.asns) + len(p.countries) <= len(news):
                detail = ""  # the first database answers for this principal: nothing to compare with
                severity = "low"
        if judged:
            self._emit(out, p, principal, "new-network", severity,
                       f"{principal} called from {address}, in {prefix}, new for it and its role{detail}",
                       prefix, t)

    def _hour(self, out: list[Signal], p: _Principal, role: _Role | None, principal: str, t: int,
              judged: bool) -> None:
        day = t // DAY_MS
        absolute = t // HOUR_MS
        hour = absolute % 24
        # Within the hour of the principal's last event these checks are false: no day turns, no
        # share is recomputed, only the counts move.
        if day > p.hours_day:
            _decay_hours(p, day, self._half)
        if role is not None and day > role.hours_day:
            _decay_hours(role, day, self._half)
        if absolute > p.hour:
            p.hour = absolute
            p.hour_count = 0
            # The share of this hour of the day in the person's activity, or in their role's when
            # that is higher: an hour their peers on the role work in is not a rare hour.
            share = p.hours[hour] / p.hours_total if p.hours_total else 1.0
            if role is not None and role.hours_total:
                share = max(share, role.hours[hour] / role.hours_total)
            p.hour_base = share
        p.hour_count += 1
        p.hours[hour] += 1.0
        p.hours_total += 1.0
        if role is not None:
            role.hours[hour] += 1.0
            role.hours_total += 1.0
        if judged and p.hour_count >= self._rare_events and p.hour_base < self._rare_share:
            self._rare_hour(out, p, principal, hour, t)

    def _rare_hour(self, out: list[Signal], p: _Principal, principal: str, hour: int, t: int) -> None:
        self._emit(out, p, principal, "rare-hour", "medium",
                   f"{principal}: {p.hour_count} calls between {hour:02d}:00 and {hour:02d}:59 UTC, an "
                   f"hour that holds {p.hour_base:.2%} of its activity (and of its role's)", "", t)

    def _emit(self, out: list[Signal], p: _Principal, principal: str, kind: str, severity: str,
              reason: str, group: str, t: int) -> None:
        """A signal; high when a deviation of another kind came for this principal within the hour."""
        others = [k for k, when in p.recent.items() if k != kind and t - when <= COMBINE_MS]
        p.recent[kind] = t
        if others and severity != "high":
            severity = "high"
            reason += f" (together with {', '.join(sorted(others))} within the hour)"
        out.append(Signal(rule=f"model:{kind}", severity=severity, principal=principal, reason=reason,
                          technique=_TECHNIQUES.get(kind), group=group))


# ATT&CK techniques where a model's deviation names one.
_TECHNIQUES = {
    "volume": "T1530",  # Data from Cloud Storage
    "instance-credentials-outside": "T1552.005",  # Unsecured Credentials: Cloud Instance Metadata API
    "imdsv1": "T1552.005",
    "long-term-key": "T1078.004",  # Valid Accounts: Cloud Accounts
    "new-principal": "T1078.004",
    "new-network": "T1078.004",
    "outside-endpoints": "T1078.004",
}


# -- state ---------------------------------------------------------------------------------------

def _settings_state(settings: ModelSettings) -> dict[str, Any]:
    data = asdict(settings)
    data["vault_tables"] = list(settings.vault_tables)
    return data


def _window_state(w: _Window) -> list[Any]:
    return [w.window, w.count, w.size, w.flagged, None if w.limit == _INF else w.limit,
            None if w.size_limit == _INF else w.size_limit, w.judged, w.stat.to_list(), w.size_stat.to_list()]


def _window_from(data: Any, what: str) -> _Window:
    if not isinstance(data, list) or len(data) != 9:
        raise ValueError(f"{what} must be a list of 9 values, not {str(data)[:80]}")
    window, count, size, flagged, limit, size_limit, judged, stat, size_stat = data
    for value, name in ((window, "window"), (count, "count"), (size, "size")):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{what}: {name} must be an integer, not {value!r}")
    for value in (limit, size_limit):
        if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool)):
            raise ValueError(f"{what}: a limit must be a number or null, not {value!r}")
    if not isinstance(flagged, bool) or not isinstance(judged, bool):
        raise ValueError(f"{what}: flagged and judged must be true or false")
    w = _Window()
    w.window, w.count, w.size, w.flagged, w.judged = window, count, size, flagged, judged
    w.limit = _INF if limit is None else float(limit)
    w.size_limit = _INF if size_limit is None else float(size_limit)
    w.stat = Stat.from_list(stat)
    w.size_stat = Stat.from_list(size_stat)
    return w


def _times(data: Any, what: str) -> dict[str, int]:
    if data is None:
        return {}
    if not isinstance(data, Mapping) or not all(
            isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) for k, v in data.items()):
        raise ValueError(f"behaviour state: {what} must be an object of name -> epoch milliseconds")
    return dict(data)


def _principal_state(p: _Principal) -> dict[str, Any]:
    return {
        "first": p.first, "last": p.last, "events": p.events, "role": p.role,
        "rates": {k: _window_state(w) for k, w in p.rates.items()},
        "volumes": {k: _window_state(w) for k, w in p.volumes.items()},
        "networks": p.networks, "asns": p.asns, "countries": p.countries, "agents": p.agents,
        "actions": p.actions, "services": p.services, "instanceNetworks": p.instance_nets,
        "hours": list(p.hours), "hoursTotal": p.hours_total,
        "hoursDay": p.hours_day, "hour": [p.hour, p.hour_count, p.hour_base],
        "links": [p.endpoint_w, p.direct_w, p.links_t],  # links_t: the day of the last decay
        "failures": _window_state(p.fails), "recent": p.recent}


def _number(value: Any, what: str, *, integer: bool = False) -> Any:
    ok = isinstance(value, int) if integer else isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or isinstance(value, bool):
        raise ValueError(f"{what} must be {'an integer' if integer else 'a finite number'}, not {value!r}")
    return value


def _principal_from(data: Any, name: str) -> _Principal:
    if not isinstance(name, str) or not isinstance(data, Mapping):
        raise ValueError("must be an object")
    role = data.get("role")
    if role is not None and not isinstance(role, str):
        raise ValueError(f"role must be a string or null, not {role!r}")
    p = _Principal(_number(data["first"], "first", integer=True), role)
    p.last = _number(data["last"], "last", integer=True)
    p.events = _number(data["events"], "events", integer=True)
    for field_name, key in (("rates", "rates"), ("volumes", "volumes")):
        table = data[key]
        if not isinstance(table, Mapping):
            raise ValueError(f"{key} must be an object")
        setattr(p, field_name, {k: _window_from(v, f"{key}[{k!r}]") for k, v in table.items()})
    for slot, key in (("networks", "networks"), ("asns", "asns"), ("countries", "countries"),
                      ("agents", "agents"), ("actions", "actions"), ("services", "services"),
                      ("instance_nets", "instanceNetworks"), ("recent", "recent")):
        setattr(p, slot, _times(data.get(key), key))
    hours = data["hours"]
    if not isinstance(hours, list) or len(hours) != 24:
        raise ValueError("hours must be a list of 24 numbers")
    p.hours = [float(_number(v, "an hour's weight")) for v in hours]
    p.hours_total = float(_number(data["hoursTotal"], "hoursTotal"))
    p.hours_day = _number(data["hoursDay"], "hoursDay", integer=True)
    hour = data["hour"]
    if not isinstance(hour, list) or len(hour) != 3:
        raise ValueError("hour must be [hour index, calls, share]")
    p.hour = _number(hour[0], "hour index", integer=True)
    p.hour_count = _number(hour[1], "hour calls", integer=True)
    p.hour_base = float(_number(hour[2], "hour share"))
    links = data["links"]
    if not isinstance(links, list) or len(links) != 3:
        raise ValueError("links must be [through endpoints, without, day]")
    p.endpoint_w = float(_number(links[0], "links through endpoints"))
    p.direct_w = float(_number(links[1], "links without endpoints"))
    p.links_t = _number(links[2], "links day", integer=True)
    p.fails = _window_from(data["failures"], "failures")
    return p

"""The key grants ledger: how the workload layer's grants reach the key layer.

In a split deployment (stack key `layer`: `keys` and `workload`, docs/deploying.md) the workload's
deployer may not write key policies, so the workload cannot call `KeyHierarchy.grant_*` on real
keys. It composes exactly as the combined stack does, but against `KeyLayerReference`
(components/key_layer.py), which records every grant call in a ledger: the method's name and its
arguments, roles as ARNs. The workload exports the ledger (stack output `keyGrants`); a person
saves it as the key layer's grants file (`workloadGrantsFile`) in a reviewed change, and the key
layer replays it through the real `KeyHierarchy` methods, which write the same least-privilege
statements as in a combined stack (a test holds the two equal).

Why a reviewed file and not a live stack reference: whoever deploys the workload would otherwise
decide what the key policies admit. With a file, what the keys admit changes only in a commit the
key administrators review (CODEOWNERS), and the key layer deploys only in an approved elevation.

The file is checked before anything is declared: its version and environment, every entry a known
grant method with exactly that method's arguments, every role an IAM role ARN of the account the
key administrators are in, and each attested grant's measurements equal to the key layer's own
(its stack file holds the PCRs the key policy pins; the workload's copy can only agree).

The file also carries what the key layer's identity part needs of the workload (section
`identity`): the management segment's VPC endpoints, the only network the human roles may be used
from (when no corporate CIDRs are configured). The key layer owns those roles, their boundary and
the just-in-time access (`compose_identity` in __main__.py): whoever deploys the workload must not
decide who may assume a role the key policies name, so the endpoints too arrive reviewed.

File format (JSON, version 1; `identity` optional, absent: the human roles are usable from nowhere):

    {"version": 1, "environment": "prod",
     "identity": {"sourceVpceIds": ["vpce-0123456789abcdef0", ...]},
     "grants": [{"grant": "grant_use_through_service", "purpose": "logs",
                 "role": "arn:aws:iam::111122223333:role/...", "service": "sqs"}, ...]}
"""

from __future__ import annotations

import functools
import inspect
import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pulumi

if TYPE_CHECKING:
    from components.keys import KeyHierarchy

LEDGER_VERSION = 1
# The grant methods of KeyHierarchy a ledger may name: every public one (a test holds the list
# equal to the methods decorated with `recorded`).
GRANT_METHODS = (
    "grant_encrypt", "grant_decrypt", "grant_generate_data_key", "grant_session_decrypt",
    "grant_generate_mac", "grant_verify_mac", "grant_cloudwatch_logs", "grant_use_through_service",
    "grant_decrypt_through_service", "grant_decrypt_with_attestation", "grant_schedule_decrypt",
    "grant_component_decrypt", "allow_administrators_through_s3", "grant_key_rotation",
    "grant_key_administration", "grant_trail_read",
)
# Grant methods a grants file may not name, and why: in a key layer they would hand the workload's
# side what the split keeps from it.
REFUSED_IN_A_GRANTS_FILE = {
    # Its statement goes to the deployers, which in a key layer are the WORKLOAD's deployer: one
    # entry naming any bucket would give it that key's use through S3. The one use it needs, the
    # truststore upload, the key layer admits itself (KeyHierarchyArgs.s3_buckets).
    "allow_administrators_through_s3": "it would give the workload's deployer the key's use "
                                       "through S3; the key layer admits the truststore itself",
    # Who administers a key and who writes its approved policy are the key layer's own roles (its
    # identity part: the key-admin elevations and the JIT API): an entry naming another role would
    # let the workload's side choose a writer of key policies.
    "grant_key_administration": "the key layer grants its own key-admin elevations and JIT API "
                                "(compose_identity); the workload names no key administrator",
    # Who reads the audit trail is the key layer's own choice (its auditors, compose_audit): an
    # entry naming another role would let the workload's side read the record of its own acts.
    "grant_trail_read": "the key layer chooses who reads its audit trail (compose_audit); the "
                        "workload names no reader",
}
# Arguments that name a principal: an IAM role ARN in the ledger.
ROLE_ARGUMENTS = ("role", "policy_writer")
_ROLE_ARN = re.compile(r"^arn:(aws|aws-cn|aws-us-gov):iam::(\d{12}):role/[\w+=,.@/-]{1,512}$")
_TEXT = re.compile(r"^[\w+=,.@:/*#-]{1,1024}$")
_PCR = re.compile(r"^PCR(0|1|2|8)$")

F = TypeVar("F", bound=Callable[..., Any])


def _plain(value: Any) -> Any:
    """A grant argument as the ledger holds it: a role by its ARN, measurements by their PCRs."""
    from components.keys import EnclaveMeasurements

    if isinstance(value, pulumi.CustomResource):  # aws.iam.Role, aws.iam.ServiceLinkedRole
        return value.arn  # type: ignore[attr-defined]
    if isinstance(value, EnclaveMeasurements):
        return value.pcrs()
    if isinstance(value, Mapping):
        return {str(k): list(v) if isinstance(v, (list, tuple)) else v for k, v in value.items()}
    return value


def ledger_entry(method: str, arguments: Mapping[str, Any]) -> dict[str, Any]:
    return {"grant": method, **{name: _plain(value) for name, value in arguments.items()}}


def recorded(method: F) -> F:
    """Record a grant method's call in `self.ledger` (a list) before running it."""
    signature = inspect.signature(method)

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        arguments = {k: v for k, v in bound.arguments.items() if k != "self"}
        self.ledger.append(ledger_entry(method.__name__, arguments))
        return method(self, *args, **kwargs)

    return wrapper  # type: ignore[return-value]


_VPCE_ID = re.compile(r"^vpce-[0-9a-f]{8,17}$")


@dataclass(frozen=True)
class GrantsFile:
    """A checked grants file: its environment, its grant entries, and the human roles' network."""

    environment: str
    grants: tuple[dict[str, Any], ...]
    source_vpce_ids: tuple[str, ...] = field(default=())


def ledger_output(environment: str, entries: Sequence[Mapping[str, Any]],
                  source_vpce_ids: Sequence[pulumi.Input[str]] = ()) -> pulumi.Output[Any]:
    """The ledger as a stack output: role ARNs and endpoint ids resolved once they exist."""
    return pulumi.Output.from_input({"version": LEDGER_VERSION, "environment": environment,
                                     "identity": {"sourceVpceIds": list(source_vpce_ids)},
                                     "grants": [dict(entry) for entry in entries]})


def _parameters(method: str) -> dict[str, inspect.Parameter]:
    from components.keys import KeyHierarchy

    return {name: parameter for name, parameter in
            inspect.signature(getattr(KeyHierarchy, method)).parameters.items() if name != "self"}


def _argument_problem(name: str, value: Any) -> str | None:
    """Why `value` cannot be argument `name` of a grant method, or None."""
    if name in ROLE_ARGUMENTS:
        return None if isinstance(value, str) and _ROLE_ARN.match(value) else "an IAM role ARN"
    if name == "create_successors":
        return None if isinstance(value, bool) else "true or false"
    if name == "encryption_context":
        ok = value is None or (isinstance(value, dict) and value and all(
            isinstance(k, str) and _TEXT.match(k) and isinstance(v, list) and v
            and all(isinstance(i, str) and _TEXT.match(i) for i in v) for k, v in value.items()))
        return None if ok else "null, or a mapping of context keys to lists of values"
    if name == "measurements":
        ok = isinstance(value, dict) and {"PCR0", "PCR1", "PCR2"} <= set(value) and all(
            isinstance(k, str) and _PCR.match(k) and isinstance(v, str) for k, v in value.items())
        return None if ok else "a mapping PCR0, PCR1, PCR2 (and PCR8) to digests"
    return None if isinstance(value, str) and _TEXT.match(value) else "a name or an ARN"


def _source_vpce_ids(data: Mapping[str, Any], source: str) -> tuple[str, ...]:
    identity = data.get("identity", {"sourceVpceIds": []})
    ids = identity.get("sourceVpceIds") if isinstance(identity, dict) else None
    if (not isinstance(identity, dict) or set(identity) != {"sourceVpceIds"} or not isinstance(ids, list)
            or not all(isinstance(i, str) and _VPCE_ID.match(i) for i in ids) or len(set(ids)) != len(ids)):
        raise ValueError(f"{source}: identity must be an object with exactly sourceVpceIds, a list of "
                         "distinct VPC endpoint ids (vpce- and 8 to 17 hex digits)")
    return tuple(ids)


def parse_grants(data: Any, source: str) -> GrantsFile:
    """Check a ledger's structure; ValueError naming `source`, the entry and what is allowed.
    The key layer checks environment, account and measurements against its own configuration
    (`ledger_problems`)."""
    if not isinstance(data, dict) or not ({"version", "environment", "grants"} <= set(data)
                                          <= {"version", "environment", "grants", "identity"}):
        raise ValueError(f"{source}: expected an object with version, environment, grants and "
                         "optionally identity, and nothing else (the workload stack's keyGrants output)")
    if data["version"] != LEDGER_VERSION:
        raise ValueError(f"{source}: version {data['version']!r}; this program reads version "
                         f"{LEDGER_VERSION}")
    if not isinstance(data["environment"], str) or not isinstance(data["grants"], list):
        raise ValueError(f"{source}: environment must be a string and grants a list")
    problems: list[str] = []
    for index, entry in enumerate(data["grants"]):
        where = f"{source}: grants[{index}]"
        if not isinstance(entry, dict) or entry.get("grant") not in GRANT_METHODS:
            shown = entry.get("grant") if isinstance(entry, dict) else entry
            problems.append(f"{where}: grant {shown!r} is not one of {', '.join(GRANT_METHODS)}")
            continue
        if entry["grant"] in REFUSED_IN_A_GRANTS_FILE:
            problems.append(f"{where}: {entry['grant']} is refused in a grants file: "
                            f"{REFUSED_IN_A_GRANTS_FILE[entry['grant']]}")
            continue
        parameters = _parameters(entry["grant"])
        given = {k: v for k, v in entry.items() if k != "grant"}
        unknown = sorted(set(given) - set(parameters))
        missing = sorted(name for name, p in parameters.items()
                         if name not in given and p.default is inspect.Parameter.empty)
        if unknown or missing:
            problems.append(f"{where} ({entry['grant']}): arguments are {', '.join(parameters)}"
                            + (f"; unknown {', '.join(unknown)}" if unknown else "")
                            + (f"; missing {', '.join(missing)}" if missing else ""))
            continue
        for name, value in given.items():
            if (wanted := _argument_problem(name, value)) is not None:
                problems.append(f"{where} ({entry['grant']}): {name} = {json.dumps(value)}; "
                                f"expected {wanted}")
    if problems:
        raise ValueError("; ".join(problems))
    return GrantsFile(data["environment"], tuple(data["grants"]), _source_vpce_ids(data, source))


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object whose keys are distinct: one read two ways would be reviewed one way and
    replayed another."""
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        twice = sorted({key for key in keys if keys.count(key) > 1})
        raise json.JSONDecodeError(f"key {', '.join(map(repr, twice))} given twice", "", 0)
    return dict(pairs)


def load_grants_file(path: Path, source: str) -> GrantsFile:
    """A grants file, checked; ValueError for anything wrong with it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{source}: cannot read {path} ({error.__class__.__name__}); export it "
                         "with `pulumi stack output keyGrants --json --stack <workload stack>`") from None
    try:
        data = json.loads(text, object_pairs_hook=_unique_keys)
    except (json.JSONDecodeError, RecursionError) as error:
        raise ValueError(f"{source}: {path} is not JSON ({error})") from None
    return parse_grants(data, source)


def ledger_problems(entries: Sequence[Mapping[str, Any]], *, environment: str, ledger_environment: str,
                    accounts: set[str], measurements: Mapping[str, str]) -> list[str]:
    """What the key layer refuses in a well-formed ledger: another environment's, a role in an
    account other than the key administrators', measurements other than its own."""
    problems = []
    if ledger_environment != environment:
        problems.append(f"the grants file is environment {ledger_environment!r}'s, this key layer "
                        f"is {environment!r}'s")
    for index, entry in enumerate(entries):
        for name in ROLE_ARGUMENTS:
            match = _ROLE_ARN.match(str(entry.get(name, "")))
            if match and accounts and match.group(2) not in accounts:
                problems.append(f"grants[{index}] ({entry['grant']}): {name} {entry[name]} is in "
                                f"account {match.group(2)}; the keys admit roles of "
                                f"{', '.join(sorted(accounts))} only (the key administrators' account)")
        if entry.get("measurements") is not None:
            theirs = {k: str(v).lower() for k, v in entry["measurements"].items()}
            ours = {k: v.lower() for k, v in measurements.items()}
            if theirs != ours:
                problems.append(f"grants[{index}] ({entry['grant']}): measurements differ from the "
                                "key layer's enclavePcr* (the key policy pins the key layer's; "
                                "change both stack files in one reviewed change)")
    return problems


def replay(keys: KeyHierarchy, entries: Sequence[Mapping[str, Any]],
           measurements: Any) -> None:
    """Make each recorded grant on the real keys. `measurements`: the key layer's own
    EnclaveMeasurements, used for every attested grant (ledger_problems checked they agree)."""
    for index, entry in enumerate(entries):
        arguments = {k: v for k, v in entry.items() if k != "grant"}
        if "measurements" in arguments:
            arguments["measurements"] = measurements
        try:
            getattr(keys, entry["grant"])(**arguments)
        except ValueError as error:
            raise ValueError(f"grants[{index}] ({entry['grant']}): {error}") from None

"""The features the behavioural models read from a record, each computed once per distinct value.

- `origin(address)`: the network an address belongs to, as its /24 (IPv4) or /48 (IPv6) prefix,
  and whether it is a public address; None for what is no address (a service name such as
  "ec2.amazonaws.com", "AWS Internal", an anonymised "035.249.253.232" with leading zeros).
- `agent_family(user_agent)`: the user agent without versions: the SDK or tool and its major
  version (`aws-cli/2`, `Boto3/1`, `aws-sdk-go-v2/1`), `browser:<name>` for a browser, the
  service for a call AWS made (`service:config.amazonaws.com`).
- `Stat`: a mean and variance that forget with a half-life in time (the models' one statistic).

Addresses and user agents repeat heavily in CloudTrail, so both functions keep their answers in a
bounded dict (cleared whole when full): the per-event cost is one dict lookup.
"""

from __future__ import annotations

import ipaddress
import math
import re

from ztai_runtime.detect.signals import remember

CACHE_ENTRIES = 65_536

Origin = tuple[str, bool]
"""(prefix, public): "198.51.100.0/24" and whether the address is public (not private, loopback,
link-local, shared/CGNAT, multicast or reserved). Documentation ranges (TEST-NET) count as public:
they stand for public addresses in examples and tests."""

# The caches (the models read them directly on their hot path, one dict lookup per event).
ORIGIN_CACHE: dict[str, Origin | None] = {}
AGENT_CACHE: dict[str, str] = {}


def origin(address: object) -> Origin | None:
    """The address's network prefix and whether it is public, or None when it is no IP address."""
    if not isinstance(address, str):
        return None
    try:
        return ORIGIN_CACHE[address]
    except KeyError:
        pass
    return remember(ORIGIN_CACHE, address, _parse_origin(address), CACHE_ENTRIES)


def _parse_origin(address: str) -> Origin | None:
    parts = address.split(".")
    if len(parts) == 4 and ":" not in address:
        octets: list[int] = []
        for part in parts:
            # No leading zeros (ambiguous: octal to some parsers), digits only, 0..255.
            if not part.isdigit() or not part.isascii() or (len(part) > 1 and part[0] == "0"):
                return None
            value = int(part)
            if value > 255:
                return None
            octets.append(value)
        a, b = octets[0], octets[1]
        private = (a in (0, 10, 127) or a >= 224 or (a == 172 and 16 <= b <= 31)
                   or (a == 192 and b == 168) or (a == 169 and b == 254) or (a == 100 and 64 <= b <= 127))
        return f"{a}.{b}.{octets[2]}.0/24", not private
    if ":" not in address:
        return None
    try:
        ip6 = ipaddress.IPv6Address(address.split("%", 1)[0])
    except ValueError:
        return None
    if ip6.ipv4_mapped is not None:
        return _parse_origin(str(ip6.ipv4_mapped))
    network = ipaddress.IPv6Network((int(ip6) >> 80 << 80, 48))
    public = not (ip6.is_private and not ip6.is_global) and not (
        ip6.is_loopback or ip6.is_link_local or ip6.is_multicast or ip6.is_reserved or ip6.is_site_local)
    # Documentation (2001:db8::/32) counts as public, as TEST-NET does for IPv4.
    if int(ip6) >> 96 == 0x20010DB8:
        public = True
    return str(network), public


# Tools and SDKs by the name their user agent starts a token with; the first one found names the
# family (a Pulumi or Terraform agent also names aws-sdk-go-v2: the provider is the better name).
_KNOWN = ("pulumi-aws", "terraform-provider-aws", "aws-cli", "Boto3", "botocore", "aws-sdk-go-v2",
          "aws-sdk-go", "aws-sdk-java", "aws-sdk-js", "aws-sdk-nodejs", "aws-sdk-rust", "aws-sdk-ruby3",
          "aws-sdk-ruby2", "aws-sdk-dotnet-coreclr", "aws-sdk-dotnet", "aws-sdk-php", "aws-sdk-cpp",
          "aws-nitro-enclaves-sdk-c", "aws-sdk-swift", "aws-sdk-kotlin", "aws-powershell",
          "AWSPowerShell", "Terraform", "HashiCorp", "APN")
_KNOWN_RE = re.compile(r"(?:^|[\s\[(])(" + "|".join(re.escape(name) for name in _KNOWN) + r")/v?(\d+)",
                       re.IGNORECASE)
_BROWSERS = (("Edg/", "edge"), ("Firefox/", "firefox"), ("Chrome/", "chrome"), ("Safari/", "safari"))
_VOLATILE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\d+", re.IGNORECASE)


def agent_family(user_agent: object) -> str | None:
    """The user agent's family (versions removed), or None when there is none."""
    if not isinstance(user_agent, str) or not user_agent:
        return None
    try:
        return AGENT_CACHE[user_agent]
    except KeyError:
        pass
    return remember(AGENT_CACHE, user_agent, _family(user_agent), CACHE_ENTRIES)


def _family(agent: str) -> str:
    text = agent.strip()
    if text.endswith(".amazonaws.com") and " " not in text:
        return f"service:{text}"
    if text == "AWS Internal":
        return "service:internal"
    if text.startswith("Mozilla/"):
        for marker, name in _BROWSERS:
            if marker in text:
                return f"browser:{name}"
        return "browser"
    found = {m.group(1).lower(): m.group(2) for m in _KNOWN_RE.finditer(text)}
    for name in _KNOWN:
        major = found.get(name.lower())
        if major is not None:
            return f"{name}/{major}"
    # Anything else: its first token, numbers and UUIDs blanked out ("stratus-red-team_<uuid>").
    tokens = text.split(None, 1)
    if not tokens:  # blanks only: no family to learn (a forged line must not crash the batch)
        return "#"
    first = tokens[0].strip("[]()")
    return _VOLATILE.sub("#", first.split("/", 1)[0])[:64] or "#"


class Stat:
    """Mean and variance of a series whose old values fade: each value's weight halves every
    `half_life_ms` of event time (West's weighted update, weights decayed before each update).
    `weight(now)` is the decayed count of values behind the mean: the evidence it rests on."""

    __slots__ = ("m2", "mean", "t", "w")

    def __init__(self, w: float = 0.0, mean: float = 0.0, m2: float = 0.0, t: int = 0) -> None:
        self.w = w
        self.mean = mean
        self.m2 = m2
        self.t = t

    def update(self, x: float, t: int, half_life_ms: float) -> None:
        decay = math.exp2(-(t - self.t) / half_life_ms) if self.w and t > self.t else (1.0 if self.w else 0.0)
        w = self.w * decay + 1.0
        delta = x - self.mean
        self.mean += delta / w
        self.m2 = self.m2 * decay + delta * (x - self.mean)
        self.w = w
        self.t = max(t, self.t)

    def weight(self, now: int, half_life_ms: float) -> float:
        return self.w * math.exp2(-(now - self.t) / half_life_ms) if now > self.t else self.w

    @property
    def std(self) -> float:
        return math.sqrt(self.m2 / self.w) if self.w > 0 and self.m2 > 0 else 0.0

    def to_list(self) -> list[float]:
        return [self.w, self.mean, self.m2, self.t]

    @classmethod
    def from_list(cls, data: object) -> Stat:
        if (not isinstance(data, list) or len(data) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                           for v in data)
                or data[0] < 0 or data[2] < 0):
            raise ValueError(f"a statistic is [weight >= 0, mean, squares >= 0, time ms], not {data!r}"[:200])
        return cls(float(data[0]), float(data[1]), float(data[2]), int(data[3]))

"""The IP database the network-origin model reads, when one is given: address -> (ASN, country).

The database is a documented input, not something the project ships or downloads: any MaxMind DB
(MMDB) file whose records carry an ASN (`autonomous_system_number`, as GeoLite2-ASN and DB-IP's
ASN Lite write it, or `asn`) and/or a country (`country.iso_code`, as GeoLite2-Country and DB-IP's
Country Lite write it, or a flat `country_code`). ASN and country often come as two files: pass
both, `GeoLookup("asn.mmdb", "country.mmdb")`; the first file that knows a field answers it.
docs/detection-models.md names a source whose licence allows using it (DB-IP Lite, CC BY 4.0).

The reader is `maxminddb` (MaxMind's, Apache-2.0; a C extension with a pure-Python fallback). It is
imported only here and only when a database is given, so the models run without it: the /24 (IPv4)
or /48 (IPv6) prefix novelty needs no database.
"""

from __future__ import annotations

import os
from typing import Any

# Looked-up addresses kept (an address repeats a lot in CloudTrail: a NAT, an office); cleared
# whole when full, which is cheaper than an LRU and as good for a working set this size.
CACHE_ENTRIES = 65_536


class GeoError(ValueError):
    """An IP database that cannot be used: the message names the file and what is wrong."""


class GeoLookup:
    """ASN and country of an address, from one or more MMDB files."""

    def __init__(self, path: str | os.PathLike[str], *more: str | os.PathLike[str]) -> None:
        try:
            import maxminddb
        except ImportError:
            raise GeoError("reading an IP database needs the maxminddb package (pip install maxminddb); "
                           "without a database the network-origin model still learns address prefixes"
                           ) from None
        self.paths = [os.fspath(p) for p in (path, *more)]
        self._readers: list[Any] = []
        for name in self.paths:
            try:
                self._readers.append(maxminddb.open_database(name))
            except FileNotFoundError:
                raise GeoError(f"IP database {name}: no such file") from None
            except (OSError, ValueError) as error:
                # maxminddb raises InvalidDatabaseError (a RuntimeError subclass in some versions).
                raise GeoError(f"IP database {name}: not a MaxMind DB (MMDB) file ({error})") from None
            except RuntimeError as error:
                raise GeoError(f"IP database {name}: not a MaxMind DB (MMDB) file ({error})") from None
        self._cache: dict[str, tuple[str | None, str | None]] = {}

    def lookup(self, address: str) -> tuple[str | None, str | None]:
        """(ASN as "AS64500", ISO country code) of `address`; None for what no file knows, and
        (None, None) for an address that does not parse (never an exception)."""
        hit = self._cache.get(address)
        if hit is not None:
            return hit
        asn: str | None = None
        country: str | None = None
        for reader in self._readers:
            try:
                record = reader.get(address)
            except ValueError:  # not an IP address (a service name, a zero-padded anonymised one)
                record = None
            if not isinstance(record, dict):
                continue
            if asn is None:
                number = record.get("autonomous_system_number", record.get("asn"))
                if isinstance(number, int):
                    asn = f"AS{number}"
                elif isinstance(number, str) and number:
                    asn = number if number.upper().startswith("AS") else f"AS{number}"
            if country is None:
                nested = record.get("country")
                code = nested.get("iso_code") if isinstance(nested, dict) else record.get("country_code")
                if isinstance(code, str) and code:
                    country = code
        result = (asn, country)
        if len(self._cache) >= CACHE_ENTRIES:
            self._cache.clear()
        self._cache[address] = result
        return result

    def close(self) -> None:
        for reader in self._readers:
            reader.close()

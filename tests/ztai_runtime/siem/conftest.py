"""Every test of the SIEM runtime runs twice: with the fast libraries the transform function ships
(orjson, pybase64; `ztai_runtime.siem.codec`) and with the standard library alone, which is what
runs wherever they are not installed. Both must give the same answers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ztai_runtime.siem import codec

FAST = ("orjson", "pybase64")


@pytest.fixture(scope="module", autouse=True, params=["fast", "stdlib"])
def json_libraries(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "fast":
        # The dev lock installs both; a missing one would make the "fast" runs test the fallback
        # twice and prove nothing about what the function ships.
        assert codec.use_fast(True) == FAST, (
            "orjson and pybase64 must be importable for these tests (requirements-dev.txt; "
            "`./run test` installs them)")
    else:
        assert codec.use_fast(False) == ()
    yield request.param
    codec.use_fast(True)

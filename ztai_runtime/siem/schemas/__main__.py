"""`python -m ztai_runtime.siem.schemas [--check]`: write (or compare) the committed class schemas."""

from __future__ import annotations

import argparse
import sys

from ztai_runtime.siem.schemas import SCHEMA_DIR, generate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ztai_runtime.siem.schemas",
                                     description="Generate the OCSF class schemas of the SIEM stream.")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a committed schema differs from a fresh one")
    options = parser.parse_args(argv)
    try:
        fresh = generate()
    except ImportError:
        print("ocsf-json-schema is not installed: it is a test dependency (pip install -r "
              "requirements-dev.txt, or ./run test)", file=sys.stderr)
        return 2
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    stale = [name for name, text in sorted(fresh.items())
             if not (SCHEMA_DIR / name).is_file() or (SCHEMA_DIR / name).read_text(encoding="utf-8") != text]
    if options.check:
        for name in stale:
            print(f"{SCHEMA_DIR / name} differs from the schema ocsf-json-schema generates; "
                  "run python -m ztai_runtime.siem.schemas", file=sys.stderr)
        return 1 if stale else 0
    for name in stale:
        (SCHEMA_DIR / name).write_text(fresh[name], encoding="utf-8")
        print(f"wrote {SCHEMA_DIR / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

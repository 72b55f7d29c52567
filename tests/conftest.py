"""Import paths for the tests: the repository root (components, ztai) and the policy pack
directory (ztpolicy), which the engine puts on the path when it runs the pack."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACK_DIR = ROOT / "policy_packs" / "zero_trust"

for path in (ROOT, PACK_DIR):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

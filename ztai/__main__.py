"""`python -m ztai`: the operator CLI."""

import sys

from ztai.cli import main

sys.exit(main())

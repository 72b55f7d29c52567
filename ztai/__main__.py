"""`python -m ztai`: the operator CLI."""

import os
import sys

from ztai.cli import main

status = main()
sys.stdout.flush()
sys.stderr.flush()
# Skip interpreter teardown: unloading the thousands of pulumi_aws classes costs ~0.25 s and
# there is nothing left to clean up (files are closed, the policy pack process is stopped).
os._exit(status)

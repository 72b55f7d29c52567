"""`python -m ztai`: the operator CLI."""

from ztai.cli import entry

entry()

"""Behavioural detection over the audit trail and the project's own logs (`ztai detect`).

`sources` reads every input the detector takes, in event-time order across files."""

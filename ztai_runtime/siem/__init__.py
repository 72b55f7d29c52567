"""The SIEM stream's runtime: the OCSF mapping (`ocsf`) and the Firehose transform (`firehose`).

Standard library only at run time: the transform Lambda ships the `ztai_runtime` directory and
nothing else (components/functions.py).
"""

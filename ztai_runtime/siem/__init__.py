"""The SIEM stream's runtime: log lines normalised to OCSF (`ocsf.py`) and their JSON Schemas
(`schemas/`), for the Firehose transformation function."""

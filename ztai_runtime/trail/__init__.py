"""CloudTrail log file integrity validation, offline: the digest chain, each digest's RSA signature
and the SHA-256 of every log file the digests list (`validation.py`), over a local copy of the
trail's S3 prefix (`local.py`)."""

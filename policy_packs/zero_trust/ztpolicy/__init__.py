"""Rules and plumbing of the zero-trust-ai policy pack (importable without starting a server)."""

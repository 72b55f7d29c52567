"""zero-trust-ai operator CLI: offline preview, policy analysis (and, later, runtime operations)."""

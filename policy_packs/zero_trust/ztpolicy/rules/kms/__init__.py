"""Rules on KMS keys: rotation, deletion, key policies, the model key."""

"""Rules on IAM roles and their policies: trust, wildcards, human-role conditions, boundaries,
session length and just-in-time grants."""

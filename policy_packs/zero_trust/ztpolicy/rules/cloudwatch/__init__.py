"""Rules on CloudWatch metric alarms."""

"""Rules on CloudWatch Logs log groups."""

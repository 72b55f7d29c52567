"""Rules on CloudTrail trails (the audit trail) and the bucket they write to."""

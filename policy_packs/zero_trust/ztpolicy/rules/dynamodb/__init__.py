"""Rules on DynamoDB tables (the token vault)."""

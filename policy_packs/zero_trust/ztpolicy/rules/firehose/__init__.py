"""Rules on Amazon Data Firehose streams."""

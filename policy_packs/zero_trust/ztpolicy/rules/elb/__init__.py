"""Rules on Elastic Load Balancing."""

"""Rules on AWS Organizations: the guardrail policies of the organisation layer."""

"""Rules on EventBridge Scheduler schedules."""

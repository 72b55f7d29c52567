"""Rules on Systems Manager: Session Manager preferences."""

"""Rules on Lambda functions (the folder has a trailing underscore: `lambda` is a Python keyword)."""

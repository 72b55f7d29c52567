"""Exit codes and the user-error exception shared by every `ztai` command."""

EXIT_OK, EXIT_VIOLATION, EXIT_USAGE, EXIT_FAILURE = 0, 1, 2, 3


class UsageError(Exception):
    """A problem with what the user asked for (arguments, input files, configuration): printed
    without a traceback, exit 2."""

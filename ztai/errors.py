"""Exit codes and the exceptions shared by every `ztai` command."""

EXIT_OK, EXIT_VIOLATION, EXIT_USAGE, EXIT_FAILURE = 0, 1, 2, 3
# As a shell reports a process ended by SIGINT or SIGPIPE: 128 + the signal number.
EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 130, 141

# Shown under every command's --help and in docs/cli.md: one list, so they cannot disagree.
EXIT_CODES: tuple[tuple[int, str], ...] = (
    (EXIT_OK, "success"),
    (EXIT_VIOLATION, "refused on security grounds: a mandatory policy is violated, or an encrypted "
                     "file does not authenticate"),
    (EXIT_USAGE, "usage error, or a stack configuration, policy configuration or input file that "
                 "cannot be used (the message names what is wrong and what is allowed)"),
    (EXIT_FAILURE, "the program or the policy pack failed: a bug, reported with its details"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C)"),
    (EXIT_BROKEN_PIPE, "the reader of the output went away (e.g. `| head`); nothing more is printed"),
)


class UsageError(Exception):
    """A problem with what the user asked for (arguments, input files, configuration): printed
    without a traceback, exit 2."""


class PolicyPackError(RuntimeError):
    """The policy pack could not be started or did not answer: exit 3."""

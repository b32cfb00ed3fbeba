"""User-facing errors: the CLI prints them as one line and exits with code 2 (or the error's
``exit_code``: 128 + signal for a training run stopped by SIGINT/SIGTERM)."""


class PocketvisionError(Exception):
    """A problem with the user's input (a file, a name, an argument), not a bug.

    The message names the thing and what to do about it, on one line.
    """

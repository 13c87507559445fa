"""The one exception type for bad user input: its message names the culprit and the fix."""


class LossbenchError(ValueError):
    """A user-facing error (bad parameter, bad data, missing weights). Stages print it on one line."""

"""The one exception family for problems the user can fix."""


class MipNerfError(Exception):
    """A user-facing problem: bad input, missing file, refused operation.

    The CLI prints ``error: <message>`` on one line and exits with code 1; anything
    that is not a MipNerfError is a bug and keeps its traceback.
    """

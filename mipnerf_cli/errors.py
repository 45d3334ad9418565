"""The one exception family for problems the user can fix."""


class MipNerfError(Exception):
    """A user-facing problem: bad input, missing file, refused operation.

    The CLI prints ``error: <message>`` on one line and exits with code 1; anything
    that is not a MipNerfError is a bug and keeps its traceback.
    """


def first_line(error: BaseException) -> str:
    """The gist of an exception: its first sentence (torch appends paragraphs of advice)."""
    text = str(error).strip().splitlines()
    if not text:
        return type(error).__name__
    return text[0].split(". ")[0].rstrip(".")

"""`mipnerf convert` (not implemented yet)."""

from mipnerf_cli.errors import MipNerfError


def convert_command() -> None:
    """Not implemented yet."""
    raise MipNerfError("not implemented yet")

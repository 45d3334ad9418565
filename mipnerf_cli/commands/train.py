"""`mipnerf train` (not implemented yet)."""

from mipnerf_cli.errors import MipNerfError


def train_command() -> None:
    """Not implemented yet."""
    raise MipNerfError("not implemented yet")

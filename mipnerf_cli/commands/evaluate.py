"""`mipnerf evaluate` (not implemented yet)."""

from mipnerf_cli.errors import MipNerfError


def eval_command() -> None:
    """Not implemented yet."""
    raise MipNerfError("not implemented yet")

"""`mipnerf plot` (not implemented yet)."""

from mipnerf_cli.errors import MipNerfError


def plot_command() -> None:
    """Not implemented yet."""
    raise MipNerfError("not implemented yet")

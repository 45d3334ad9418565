"""`mipnerf render` (not implemented yet)."""

from mipnerf_cli.errors import MipNerfError


def render_command() -> None:
    """Not implemented yet."""
    raise MipNerfError("not implemented yet")

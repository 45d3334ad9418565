"""`mipnerf bench` (not implemented yet)."""

from mipnerf_cli.errors import MipNerfError


def bench_command() -> None:
    """Not implemented yet."""
    raise MipNerfError("not implemented yet")

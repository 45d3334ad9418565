"""`mipnerf demo-scene` (not implemented yet)."""

from mipnerf_cli.errors import MipNerfError


def demo_scene_command() -> None:
    """Not implemented yet."""
    raise MipNerfError("not implemented yet")

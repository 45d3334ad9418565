"""mip-NeRF in PyTorch: one command line tool for the whole workflow."""

__version__ = "0.1.0"

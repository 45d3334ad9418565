"""A file handle on a disk that fills up: shared by the checkpoint and fault tests."""

from __future__ import annotations

import errno


class DiskFillsUp:
    """Wraps an open binary file: the first write stores half its bytes, then fails with ENOSPC.

    What a real full disk does to `torch.save` half-way through a checkpoint; the half written
    is left in the file so a test can check that nothing reads it.
    """

    def __init__(self, handle):
        self.handle = handle

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.close()

    def write(self, data):
        self.handle.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

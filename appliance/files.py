"""Reading a file an operator names: a regular file, of at most so many bytes, or a one-line refusal.

Every file the appliance reads at its operator's word goes through
:func:`read_regular_file`: the configuration and its ``includefile`` files,
the leap-second file, the drift file. ``/dev/zero`` as a configuration
would otherwise be read until memory runs out, a FIFO would block the
daemon for ever at ``open``, and a directory or a serial port is no
configuration either; each is refused with :class:`FileRefused`, an
:class:`OSError` whose ``strerror`` says why (``not a regular file (a
character device)``, ``larger than 1048576 bytes``) and whose ``filename``
is the path, so the callers' existing ``cannot read: ...`` messages carry it.

The file is opened ``O_NONBLOCK`` (a FIFO opens at once instead of waiting
for a writer) and ``O_NOCTTY``, checked with ``fstat`` on the open
descriptor (no window between a check and the open), and read to at most
``max_bytes + 1`` bytes, so a file that grows while it is read is refused
too. Only this module and the callers' ``OSError`` handlers know about it;
the parsers get the text.
"""

from __future__ import annotations

import errno
import os
import stat

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
)


class FileRefused(OSError):
    """A file that exists but is not one to read: not a regular file, or too large."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(errno.EINVAL, reason, path)


def file_kind(mode: int) -> str:
    """What a non-regular file is, in words ("a character device"), from its ``st_mode``."""
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def read_regular_file(path: str | os.PathLike[str], max_bytes: int) -> bytes:
    """The contents of the regular file at ``path``, at most ``max_bytes`` long.

    Raises :class:`FileRefused` for anything else that exists (a directory,
    a device, a FIFO, a socket, a file over ``max_bytes``) and the usual
    :class:`OSError` (``FileNotFoundError``, ``PermissionError``...) when
    it cannot be opened. Symbolic links are followed.
    """
    name = os.fspath(path)
    fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FileRefused(name, f"not a regular file ({file_kind(st.st_mode)})")
        if st.st_size > max_bytes:
            raise FileRefused(name, f"larger than {max_bytes} bytes ({st.st_size})")
        chunks: list[bytes] = []
        left = max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 65536))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise FileRefused(name, f"larger than {max_bytes} bytes")
    return data

"""The drift file: the clock's frequency correction kept across restarts (ntpd's ``driftfile``).

Format (ntpd's): one line holding one number, the frequency correction in
ppm, positive when the clock is made to run faster (the sign of the kernel's
``timex.freq`` and of :meth:`appliance.clock.base.Clock.frequency_ppb`),
for example ``-12.345``. chrony's two-number drift file is not accepted.

- :func:`parse_drift` is pure: text in, ppb out, :class:`DriftFileError` for
  bad content (empty, not a number, NaN, beyond +-500 ppm, extra fields).
- :func:`read_drift_file` reads at start: a missing file is a cold start
  (None), bad content is logged as a warning and ignored (None), never a crash.
- :func:`should_write` is the pure "once an hour at most" decision.
- :func:`write_drift_file` replaces the file atomically: a temporary file in
  the same directory, written, fsync'd, renamed over the old one, and the
  directory fsync'd, so a power cut leaves the old file or the new one.
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from pathlib import Path

from appliance.clock.base import MAX_FREQUENCY_PPB
from appliance.timebase import NS_PER_S

_log = logging.getLogger(__name__)

#: Write the drift file at most this often (ns): an hour, like ntpd.
WRITE_INTERVAL_NS = 3600 * NS_PER_S


class DriftFileError(ValueError):
    """The drift file's content is not one frequency in ppm within +-500."""


def parse_drift(text: str) -> float:
    """Return the frequency (ppb, +: faster) that drift-file ``text`` holds (ppm); DriftFileError if bad."""
    fields = text.split()
    if len(fields) != 1:
        raise DriftFileError(f"expected one number (ppm), found {len(fields)} fields")
    try:
        ppm = float(fields[0])
    except ValueError:
        raise DriftFileError(f"not a number: {fields[0][:40]!r}") from None
    if not math.isfinite(ppm):
        raise DriftFileError(f"not a finite number: {fields[0]!r}")
    ppb = ppm * 1000.0
    if abs(ppb) > MAX_FREQUENCY_PPB:
        raise DriftFileError(f"{ppm} ppm is beyond the +-{MAX_FREQUENCY_PPB / 1000:g} ppm a clock accepts")
    return ppb


def format_drift(frequency_ppb: float) -> str:
    """Return the drift-file text for a frequency in ppb (written in ppm, 6 decimals: 1e-3 ppb)."""
    return f"{frequency_ppb / 1000.0:.6f}\n"


def read_drift_file(path: Path) -> float | None:
    """Return the frequency (ppb) in the drift file at ``path``, or None for a cold start.

    A missing file gives None quietly; unreadable or bad content gives None
    and a warning naming the file. Never raises for the file's sake.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        _log.warning("drift file %s unreadable, starting without it: %s", path, exc)
        return None
    try:
        return parse_drift(data.decode("ascii"))
    except (UnicodeDecodeError, DriftFileError) as exc:
        _log.warning("drift file %s ignored, starting without it: %s", path, exc)
        return None


def should_write(last_write_ns: int | None, now_ns: int, interval_ns: int = WRITE_INTERVAL_NS) -> bool:
    """Whether to write the drift file now: never written, or ``interval_ns`` since the last write.

    A clock that went backwards past the last write (a step) also writes, so
    a step cannot stop the writes for the length of the step.
    """
    if last_write_ns is None:
        return True
    elapsed = now_ns - last_write_ns
    return elapsed >= interval_ns or elapsed < 0


def write_drift_file(path: Path, frequency_ppb: float) -> None:
    """Atomically replace the drift file at ``path`` with ``frequency_ppb`` (ppb); OSError on failure."""
    text = format_drift(frequency_ppb).encode("ascii")
    directory = path.parent
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(text)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, path)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    dir_fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)

"""The drift file: the clock's frequency correction kept across restarts (ntpd's ``driftfile``).

Format (ntpd's): one line holding one number, the frequency correction in
ppm, positive when the clock is made to run faster (the sign of the kernel's
``timex.freq`` and of :meth:`appliance.clock.base.Clock.frequency_ppb`),
for example ``-12.345``. chrony's two-number drift file is not accepted.

- :func:`parse_drift` is pure: text in, ppb out, :class:`DriftFileError` for
  bad content (empty, not a number, NaN, beyond +-500 ppm, extra fields).
- :func:`read_drift_file` reads at start: a missing file is a cold start
  (None), bad content, a file over 4096 bytes or one that is not a regular
  file is logged as a warning and ignored (None), never a crash.
- :func:`should_write` is the pure "once an hour at most" decision.
- :func:`write_drift_file` replaces the file atomically: a temporary file in
  the same directory, written, fsync'd, renamed over the old one, and the
  directory fsync'd, so a power cut leaves the old file or the new one.
- :class:`DriftFile` is what the daemon holds: read once at start, then
  :meth:`DriftFile.update` (run it every minute or so) writes the discipline's
  frequency estimate at most once an hour while the discipline is tracking
  with an estimate at least as good as a warm start assumes, and
  :meth:`DriftFile.close` writes it once more at a clean shutdown. A file that
  cannot be written is a warning naming it, never a crash. The caller passes
  the time (any monotonic ns count) and the discipline's status.
"""

from __future__ import annotations

import logging
import math
import os
import stat
import tempfile
from pathlib import Path

from appliance.clock.base import MAX_FREQUENCY_PPB
from appliance.clock.discipline import DisciplineConfig, DisciplineStatus, Mode
from appliance.files import FileRefused, file_kind, read_regular_file
from appliance.timebase import NS_PER_S

_log = logging.getLogger(__name__)

#: Write the drift file at most this often (ns): an hour, like ntpd.
WRITE_INTERVAL_NS = 3600 * NS_PER_S
#: Write only an estimate this good (1-sigma, ppb): a tenth of what a warm start assumes of the file (1 ppm),
#: because the loop's own uncertainty is optimistic in its first seconds (a step or a slew still settling).
WRITE_MAX_SD_PPB = DisciplineConfig().warm_frequency_sd_ppb / 10
#: ... and only after this many samples: a minute of PPS, a quarter of an hour of an upstream at 64 s.
WRITE_MIN_UPDATES = 16
#: A drift file is one short line: larger content is not one (and is not read into memory).
MAX_FILE_BYTES = 4096


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
        data = read_regular_file(path, MAX_FILE_BYTES)
    except FileNotFoundError:
        return None
    except OSError as exc:
        _log.warning("drift file %s unreadable, starting without it: %s", path, exc.strerror or exc)
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
    """Atomically replace the drift file at ``path`` with ``frequency_ppb`` (ppb); OSError on failure.

    Something there that is not a regular file (``driftfile /dev/null``, a
    directory) is never replaced: :class:`~appliance.files.FileRefused`.
    """
    text = format_drift(frequency_ppb).encode("ascii")
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        mode = stat.S_IFREG
    if not stat.S_ISREG(mode):
        raise FileRefused(str(path), f"not a regular file ({file_kind(mode)}), not replaced")
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


def worth_writing(
    status: DisciplineStatus, max_sd_ppb: float = WRITE_MAX_SD_PPB, min_updates: int = WRITE_MIN_UPDATES
) -> bool:
    """Whether the discipline's frequency estimate belongs in the drift file.

    Only a discipline that has taken ``min_updates`` samples and whose
    frequency is known within ``max_sd_ppb`` (1 sigma): a rough first
    estimate would give the next start a wrong frequency that it trusts.
    """
    return (
        status.mode is not Mode.UNSYNCHRONISED
        and status.updates >= min_updates
        and status.frequency_sd_ppb <= max_sd_ppb
    )


class DriftFile:
    """One daemon's drift file at ``path``: read at start, written at most hourly and at shutdown.

    Times are the caller's (ns of any monotonic count: the hour is measured
    on it, not on the disciplined clock, which a step may move). Nothing
    here raises for the file's sake: failures are logged with the path.
    """

    def __init__(self, path: Path, *, interval_ns: int = WRITE_INTERVAL_NS) -> None:
        self.path = path
        self.interval_ns = interval_ns
        self.writes = 0
        self.failures = 0
        self._last_write_ns: int | None = None

    def load(self, now_ns: int) -> float | None:
        """Read the file (ppb, or None for a cold start); the first write is due an hour from ``now_ns``."""
        self._last_write_ns = now_ns
        self._remove_stale_temporaries()
        frequency = read_drift_file(self.path)
        if frequency is not None:
            _log.info("drift file %s: starting at %+.3f ppm", self.path, frequency / 1000.0)
        return frequency

    def _remove_stale_temporaries(self) -> None:
        """Remove temporaries that a crash between write and rename left behind (the old file stands)."""
        try:
            stale = list(self.path.parent.glob(f".{self.path.name}.*.tmp"))
        except OSError:
            return
        for tmp in stale:
            try:
                tmp.unlink()
            except OSError as exc:
                _log.warning("drift file: cannot remove stale temporary %s: %s", tmp, exc)

    def update(self, now_ns: int, status: DisciplineStatus) -> bool:
        """Write the frequency estimate if an hour has passed and the discipline is tracking; True if written."""
        if status.mode is not Mode.TRACKING or not worth_writing(status):
            return False
        if not should_write(self._last_write_ns, now_ns, self.interval_ns):
            return False
        return self.save(now_ns, status.frequency_ppb)

    def close(self, now_ns: int, status: DisciplineStatus) -> bool:
        """At a clean shutdown: write the estimate if it is worth keeping (also in holdover); True if written."""
        if not worth_writing(status):
            return False
        return self.save(now_ns, status.frequency_ppb)

    def save(self, now_ns: int, frequency_ppb: float) -> bool:
        """Write ``frequency_ppb`` now; False (and a warning naming the file) when it cannot be written.

        A failed write counts as an attempt: the next one is an hour later, so
        a read-only or full disk costs one log line an hour.
        """
        self._last_write_ns = now_ns
        try:
            write_drift_file(self.path, frequency_ppb)
        except OSError as exc:
            self.failures += 1
            _log.warning("drift file %s not written (the next try is in an hour): %s", self.path, exc)
            return False
        self.writes += 1
        return True

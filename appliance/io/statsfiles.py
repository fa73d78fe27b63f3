"""Writes ntpd-style statistics files (``statsdir``, ``statistics``, ``filegen``) from status snapshots.

What goes in the lines and when is :mod:`appliance.status.statsfiles`'s; this module appends them to
``statsdir/NAME.YYYYMMDD`` (or ``statsdir/NAME`` for ``type none``) and, with ``link`` (ntpd's default),
points the symbolic link ``statsdir/NAME`` at today's file. The directory is never created (it is the
packaging's, or the administrator's, as ntpd has it): when it is missing or not writable the writer says so
once in the log and keeps trying quietly, and serving goes on. A line is a few dozen octets, written at
most once per poll interval per source: appending on the loop's thread costs nothing measurable.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

from appliance.config.model import Filegen
from appliance.status.snapshot import Snapshot
from appliance.status.statsfiles import StatsPlan, file_name

log = logging.getLogger("stratum1.stats")


#: The files' mode: the service's group (the web page's and ``stratum1 plot``'s users are in it) reads them,
#: though the unit's ``UMask=0077`` would make them the owner's alone; nobody else (ntpd makes them 0644).
FILE_MODE = 0o640


class StatsWriter:
    """Appends the due lines of each snapshot to the enabled files in ``statsdir``."""

    def __init__(self, statsdir: str, filegens: Iterable[Filegen]) -> None:
        self.statsdir = statsdir
        self.filegens = {g.name: g for g in filegens if g.enabled}
        self.plan = StatsPlan()
        self.lines = 0
        self.errors = 0
        self._warned = False

    def observe(self, snap: Snapshot) -> None:
        for name, line in self.plan.due(snap, frozenset(self.filegens)):
            self._append(self.filegens[name], snap.time_ns, line)

    def _append(self, gen: Filegen, t_ns: int, line: str) -> None:
        name = file_name(gen, t_ns)
        path = os.path.join(self.statsdir, name)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, FILE_MODE)
            with open(fd, "a", encoding="ascii", closefd=True) as f:
                if os.fstat(fd).st_size == 0:  # new (or empty): readable by the group whatever the umask
                    os.fchmod(fd, FILE_MODE)
                f.write(line + "\n")
            if gen.link and name != gen.file:
                self._link(gen.file, name)
        except OSError as e:
            self.errors += 1
            if not self._warned:
                self._warned = True
                log.warning("statistics files in %s cannot be written: %s", self.statsdir, e.strerror or e)
            return
        self.lines += 1

    def _link(self, link: str, target: str) -> None:
        path = os.path.join(self.statsdir, link)
        try:
            if os.readlink(path) == target:
                return
        except FileNotFoundError:
            pass
        except OSError:
            if not os.path.islink(path):
                return  # a regular file of that name: leave it alone
        tmp = path + ".new"
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        os.symlink(target, tmp)
        os.replace(tmp, path)

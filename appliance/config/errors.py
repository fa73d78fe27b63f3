"""The one error the configuration code raises: :class:`ConfigError`.

Every problem with a configuration (a bad line, a missing include, an
unreadable file) is a ConfigError whose text names the place, in the form
compilers use so editors can jump to it::

    /etc/stratum1/ntp.conf:12: unknown directive 'sever' (did you mean 'server'?)
    /etc/stratum1/ntp.conf: cannot read: No such file or directory

A file with several bad lines is one ConfigError for the first with the
others in :attr:`ConfigError.more`, printed one a line under it (as ntpd logs
every bad line, and a compiler every error), so one edit can mend them all.
"""

from __future__ import annotations

from collections.abc import Sequence

from appliance.config.model import Location

#: At most this many errors are printed; the rest are counted ("... and N more").
MAX_ERRORS_SHOWN = 20


class ConfigError(Exception):
    """A configuration that cannot be used.

    ``location`` is the file and line at fault, or None when the fault has no
    line (an unreadable file); ``file`` is the file's name either way, when
    known; ``message`` is what is wrong, without the place.
    """

    def __init__(self, message: str, location: Location | None = None, *, file: str | None = None) -> None:
        self.message = message
        self.location = location
        self.file = location.file if location is not None else file
        #: the errors of the file's later lines, when it has several (in file order)
        self.more: tuple[ConfigError, ...] = ()
        super().__init__(self.first())

    @classmethod
    def of(cls, errors: Sequence[ConfigError]) -> ConfigError:
        """One error for a non-empty list of them: the first, carrying the others."""
        first = errors[0]
        first.more = tuple(errors[1:])
        return first

    def first(self) -> str:
        """This error alone, as ``FILE:LINE: message``."""
        if self.location is not None:
            return f"{self.location}: {self.message}"
        if self.file is not None:
            return f"{self.file}: {self.message}"
        return self.message

    def __str__(self) -> str:
        if not self.more:
            return self.first()
        lines = [self.first(), *(e.first() for e in self.more[: MAX_ERRORS_SHOWN - 1])]
        hidden = len(self.more) + 1 - len(lines)
        if hidden:
            lines.append(f"... and {hidden} more errors")
        return "\n".join(lines)

"""The one error the configuration code raises: :class:`ConfigError`.

Every problem with a configuration (a bad line, a missing include, an
unreadable file) is a ConfigError whose text names the place, in the form
compilers use so editors can jump to it::

    /etc/stratum1/ntp.conf:12: unknown directive 'sever' (did you mean 'server'?)
    /etc/stratum1/ntp.conf: cannot read: No such file or directory
"""

from __future__ import annotations

from appliance.config.model import Location


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
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.location is not None:
            return f"{self.location}: {self.message}"
        if self.file is not None:
            return f"{self.file}: {self.message}"
        return self.message

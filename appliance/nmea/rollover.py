"""Dates a receiver gets wrong: two-digit years and the GPS week-number rollover.

Facts used here:

- RMC (and u-blox ``$PUBX,04``) carry the year as two digits (``ddmmyy``);
  only ZDA writes four. A two-digit year needs a century: we take the one that puts it within 80 years before and
  19 years after a *pivot year* (the last four-digit year the receiver sent,
  else the firmware's build year). Receivers err into the past, never far
  into the future, hence the lopsided window.
- The GPS broadcast carries a 10-bit week number, which wraps every 1024
  weeks (619,315,200 s, about 19.6 years): 1999-08-22 and 2019-04-07 were
  rollovers. A receiver that resolves the week against a fixed firmware epoch
  reports dates 1024 weeks in the past once that epoch is passed (receivers
  hit on 2019-04-06 said 1999-08-22, and the MTK default date 1980-01-05 is
  week 0). No true date can precede the firmware's own build date, so a date
  earlier than ``build date - margin`` is moved forward in 1024-week steps
  until it is not, or refused, as the :class:`RolloverPolicy` says.
- The shift is exact in GPS time; we add 1024 weeks of POSIX seconds to
  UTC and ignore leap seconds. That is right to the second for a receiver
  that takes GPS-UTC from the broadcast (the usual case: only the week number
  is misread); one that applies a firmware default is off by the leap
  seconds since that default (GPS-UTC went from 13 s in 1999 to 18 s in
  2019), and its UTC is wrong whatever we do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from appliance.timebase import NS_PER_S

#: One GPS week-number era: 1024 weeks, in seconds (619,315,200).
WEEK_ROLLOVER_S = 1024 * 7 * 86_400
WEEK_ROLLOVER_NS = WEEK_ROLLOVER_S * NS_PER_S
#: Default allowance for dates before the build date (clock skew of the build
#: host, receivers shipped with older firmware builds): one year of 365 days.
DEFAULT_MARGIN_NS = 365 * 86_400 * NS_PER_S
_YEARS_BACK = 80


def expand_year(yy: int, pivot_year: int) -> int:
    """Return the four-digit year ending in ``yy`` (0-99) that lies in ``[pivot-80, pivot+19]``.

    >>> expand_year(99, 2019), expand_year(19, 2019), expand_year(80, 2026)
    (1999, 2019, 1980)
    """
    if not 0 <= yy <= 99:
        raise ValueError(f"not a two-digit year: {yy}")
    first = pivot_year - _YEARS_BACK
    return first + (yy - first) % 100


def year_of(t_ns: int) -> int:
    """Return the UTC calendar year of a POSIX time in ns."""
    return datetime.fromtimestamp(t_ns // NS_PER_S, UTC).year


@dataclass(frozen=True, slots=True)
class RolloverPolicy:
    """How to treat dates from before the firmware was built.

    ``build_date_ns`` is the firmware's build date (POSIX ns); dates earlier
    than ``build_date_ns - margin_ns`` are repaired by adding 1024-week steps,
    or refused when ``refuse`` is true.
    """

    build_date_ns: int
    margin_ns: int = DEFAULT_MARGIN_NS
    refuse: bool = False

    @property
    def earliest_ns(self) -> int:
        """The earliest UTC time (POSIX ns) accepted as it is."""
        return self.build_date_ns - self.margin_ns

    @property
    def pivot_year(self) -> int:
        """The build year: the pivot for two-digit years when no four-digit year is known."""
        return year_of(self.build_date_ns)

    def repair(self, utc_ns: int) -> tuple[int | None, int]:
        """Return ``(time, steps)``: ``utc_ns`` moved forward by ``steps`` 1024-week eras.

        ``time`` is None when the date is too early and the policy refuses
        instead of repairing (``steps`` is then the number it would have taken).
        """
        if utc_ns >= self.earliest_ns:
            return utc_ns, 0
        steps = (self.earliest_ns - utc_ns + WEEK_ROLLOVER_NS - 1) // WEEK_ROLLOVER_NS
        if self.refuse:
            return None, steps
        return utc_ns + steps * WEEK_ROLLOVER_NS, steps

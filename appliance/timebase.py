"""The one time type of stratum1 and every conversion to and from it.

Time inside the appliance is an ``int`` of nanoseconds since the POSIX epoch
(1970-01-01T00:00:00 UTC, leap seconds not counted), the scale of
``CLOCK_REALTIME``. Durations and offsets are ``int`` nanoseconds too. Nothing
else is a time: floats appear only at the edges (printing, maths on rates).

NTP carries time in two fixed-point formats (RFC 5905 section 6):

- the 64-bit *timestamp*: 32 bits of seconds since 1900-01-01 and 32 bits of
  fraction. The seconds wrap every 2**32 s (136 years): era 0 ends on
  2036-02-07T06:28:16Z, when era 1 begins. A timestamp alone does not say its
  era, so decoding needs a *pivot*, a time known to lie within 68 years of the
  answer (the local clock, or the firmware's build date);
- the 32-bit *short* format: 16 bits of seconds, 16 of fraction, used for root
  delay and root dispersion (unsigned).

Conversions round to the nearest representable value: a 32.32 timestamp has a
resolution of 233 ps, finer than a nanosecond, so ns -> 32.32 -> ns is exact.
"""

from __future__ import annotations

NS_PER_S = 1_000_000_000
#: Seconds from the NTP prime epoch (1900-01-01) to the POSIX epoch (1970-01-01).
NTP_UNIX_OFFSET_S = 2_208_988_800
_ERA_S = 1 << 32
_FRAC = 1 << 32
_HALF_ERA_NS = (_ERA_S // 2) * NS_PER_S


def ntp64_from_ns(t_ns: int) -> int:
    """Return the 64-bit NTP timestamp (era dropped) for a POSIX time in ns.

    The result is ``seconds << 32 | fraction`` modulo 2**64, rounded to the
    nearest 2**-32 s. Times before 1900 or after era 0 wrap, as on the wire.
    """
    total = t_ns + NTP_UNIX_OFFSET_S * NS_PER_S
    secs, rem = divmod(total, NS_PER_S)
    frac = (rem * _FRAC + NS_PER_S // 2) // NS_PER_S
    return ((secs << 32) + frac) & 0xFFFF_FFFF_FFFF_FFFF


def ns_from_ntp64(ts: int, pivot_ns: int) -> int:
    """Return the POSIX time in ns that the NTP timestamp ``ts`` stands for.

    ``pivot_ns`` chooses the era: the answer is the one within +-68 years of
    the pivot (RFC 5905 section 6, "era"). Rounds to the nearest ns.
    """
    secs = ts >> 32
    frac = ts & 0xFFFF_FFFF
    ns_in_era = secs * NS_PER_S + (frac * NS_PER_S + _FRAC // 2) // _FRAC
    epoch_ns = -NTP_UNIX_OFFSET_S * NS_PER_S  # era 0 starts here, in POSIX ns
    era_ns = _ERA_S * NS_PER_S
    # candidate in the pivot's era, then the neighbour that is closest
    base = epoch_ns + ((pivot_ns - epoch_ns) // era_ns) * era_ns
    t = base + ns_in_era
    if t - pivot_ns > _HALF_ERA_NS:
        t -= era_ns
    elif pivot_ns - t >= _HALF_ERA_NS:
        t += era_ns
    return t


def ntp_era(t_ns: int) -> int:
    """Return the NTP era number of a POSIX time (0 until 2036-02-07)."""
    return (t_ns // NS_PER_S + NTP_UNIX_OFFSET_S) >> 32


def ntp64_diff_ns(a: int, b: int) -> int:
    """Return ``a - b`` in ns for two NTP timestamps, era-safe.

    Valid when the true difference is within +-68 years (RFC 5905 section 6:
    differences of timestamps are computed modulo 2**64 as signed values).
    """
    d = (a - b) & 0xFFFF_FFFF_FFFF_FFFF
    if d >= 1 << 63:
        d -= 1 << 64
    return (d * NS_PER_S + (1 << 31)) >> 32


def short_from_ns(d_ns: int) -> int:
    """Return the NTP short format (16.16 unsigned) for a duration in ns.

    Negative durations give 0; durations of 65536 s or more saturate at the
    largest value, as ntpd and chrony do for root dispersion.
    """
    if d_ns <= 0:
        return 0
    v = (d_ns * 65536 + NS_PER_S // 2) // NS_PER_S
    return min(v, 0xFFFF_FFFF)


def ns_from_short(v: int) -> int:
    """Return the duration in ns of an NTP short format value (16.16)."""
    return (v * NS_PER_S + 32768) >> 16


def log2_from_ns(d_ns: int) -> int:
    """Return the NTP log2-seconds exponent (a precision) for a duration in ns.

    The result is the smallest ``p`` with ``2**p`` s >= ``d_ns``, the way
    ntpd states its clock precision; 1 ns gives -29.
    """
    if d_ns <= 0:
        return -30
    p = 0
    # 2**p seconds >= d_ns ns  <=>  2**p * 1e9 >= d_ns
    while (NS_PER_S << p if p >= 0 else NS_PER_S >> -p) < d_ns:
        p += 1
    while p > -30 and (NS_PER_S >> -(p - 1) if p - 1 < 0 else NS_PER_S << (p - 1)) >= d_ns:
        p -= 1
    return p


def seconds(d_ns: int) -> float:
    """Return a duration in ns as float seconds (for printing and rate maths)."""
    return d_ns / NS_PER_S


def ns_from_seconds(s: float) -> int:
    """Return float seconds as int ns, rounded to the nearest ns."""
    return round(s * NS_PER_S)

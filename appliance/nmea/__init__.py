"""NMEA 0183 decoding, sans I/O: bytes -> lines -> sentences -> fixes; rollover repair.

The time is passed in (``now_ns`` with every chunk); nothing here reads a
clock or a port. Start with :class:`NmeaStream`.
"""

from appliance.nmea.counters import NmeaCounters
from appliance.nmea.epoch import DateSource, Fix, FixMode
from appliance.nmea.rollover import WEEK_ROLLOVER_S, RolloverPolicy, expand_year
from appliance.nmea.stream import NmeaStream, SentenceStream

__all__ = [
    "WEEK_ROLLOVER_S",
    "DateSource",
    "Fix",
    "FixMode",
    "NmeaCounters",
    "NmeaStream",
    "RolloverPolicy",
    "SentenceStream",
    "expand_year",
]

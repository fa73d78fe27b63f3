"""The local clock as a reference (ntpd's ``server 127.127.1.0``, chrony's ``local``).

The machine's own clock, undisciplined, served at a configured stratum
(``fudge 127.127.1.0 stratum 10``). It is the last fallback: it says only
"this clock, as it is". Pure: the caller passes the time.

ntpd would serve stratum 11 for ``fudge ... stratum 10`` (its LOCAL driver is
stratum 10 and the server one more); stratum1 serves the fudged stratum
itself, as chrony's ``local stratum 10`` does, which is what the tutorials
that write ``stratum 10`` mean.

Who gets it: only clients that a ``restrict`` line for their network admits
(the LAN). Clients that only a ``default`` entry matches (the public, the
NTP Pool's monitors) are told "unsynchronised" instead, unless the config
says ``localclock public serve`` (:class:`~appliance.config.model.LocalClockOptions`);
:meth:`LocalClock.state` marks its state so (``public_unsync``) and the
server does the rest per client.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.config.model import Config
from appliance.state import SystemState, local_clock_state

LOCAL_DRIVER = 1
DEFAULT_STRATUM = 10
#: ntpd's LOCAL driver polls every 64 s: the reference time advances in these steps.
POLL_NS = 64 * 1_000_000_000


@dataclass(frozen=True, slots=True)
class LocalClock:
    """The local clock reference: its stratum and refid from the config, whether the public gets it, and when.

    ``public_unsync`` (default True: ``localclock public unsync``) hides it from default-only clients;
    ``waits_for_sync`` (``localclock start wait``; default False, as without the line) keeps it unused
    until another configured source has synchronised the clock once (the timekeeper applies it).
    """

    stratum: int = DEFAULT_STRATUM
    refid: str = "LOCL"
    public_unsync: bool = True
    waits_for_sync: bool = False

    @classmethod
    def from_config(cls, config: Config) -> LocalClock | None:
        """The local clock the config asks for (``server 127.127.1.u`` or ``refclock local``), or None."""
        public_unsync = config.localclock.public_unsync
        waits = config.localclock.waits_for_sync
        for s in config.servers:
            rc = s.refclock
            if rc is not None and rc[0] == LOCAL_DRIVER:
                fudge = config.fudge_for(s.host)
                stratum = fudge.stratum if fudge and fudge.stratum is not None else DEFAULT_STRATUM
                refid = fudge.refid if fudge and fudge.refid else "LOCL"
                return cls(stratum, refid, public_unsync, waits)
        for r in config.refclocks:
            if r.driver == "local":
                stratum = r.stratum if r.stratum is not None else DEFAULT_STRATUM
                return cls(stratum, r.refid or "LOCL", public_unsync, waits)
        return None

    def state(self, now_ns: int, precision: int) -> SystemState:
        """The system state while serving this clock, with the reference time of the last 64 s poll."""
        reference_ns = now_ns - now_ns % POLL_NS
        return local_clock_state(self.stratum, precision, reference_ns, self.refid, public_unsync=self.public_unsync)

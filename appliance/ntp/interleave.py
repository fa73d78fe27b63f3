"""NTP interleaved client/server mode, the server's side (RFC 9769 section 2; pure).

In basic mode a reply carries a transmit timestamp read *before* it is sent:
the time it takes to reach the wire (the rest of the Python or C send path,
the kernel, the driver queue) is an error the client cannot see. The kernel
can stamp the reply as it leaves (``SO_TIMESTAMPING``), but only after it
has left. Interleaved mode hands that better timestamp over in the *next*
reply to the same client::

    client                                        server
      request 1 (basic)            ------------>  T2  (receive, as sent)
                                   <------------  reply 1: T2, T3 read before the send; its true T3' stamped
                                                  by the kernel as it leaves, kept under T2
      request 2: origin = T2,      ------------>  T2b
                 receive = its T4 (!= transmit)
                                   <------------  reply 2: origin = request's receive, receive = T2b,
                                                  transmit = T3' (reply 1's true time); T3b' kept under T2b

A request asks for interleaved mode when its origin timestamp is the receive
timestamp of an earlier reply whose transmit time was kept, and its receive
and transmit timestamps differ (a basic request copies nothing there).

The server cannot keep the receive timestamp of every reply. As chrony does,
it marks them instead: every receive timestamp it sends has its lowest bit
set (:func:`mark_receive`), every transmit timestamp its lowest bit clear
(:func:`mark_transmit`); 2**-32 s, 0.23 ns, either way. Only a request whose
origin has that bit set can be interleaved (a basic client echoes the
transmit timestamp, or zero), so only those are looked at (the compiled data
plane hands them to the Python server) and only the replies to them have
their transmit time taken and kept, in a :class:`TransmitTable` of bounded
size: an interleaved client's first request gets a basic reply and every
later one an interleaved reply.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

#: The lowest bit of a receive timestamp this server sent (RFC 9769 leaves the marking to the server).
RX_FLAG = 1
#: Replies whose transmit times are kept, at most: about 40 bytes each.
DEFAULT_SIZE = 16384


def mark_receive(ntp64: int) -> int:
    """A receive timestamp as this server sends it: lowest bit set."""
    return ntp64 | RX_FLAG


def mark_transmit(ntp64: int) -> int:
    """A transmit timestamp as this server sends it: lowest bit clear."""
    return ntp64 & ~RX_FLAG


def may_interleave(origin: int, receive: bytes, transmit: bytes) -> bool:
    """Whether a request (its origin timestamp, and its receive and transmit fields) can ask for interleaved mode."""
    return bool(origin & RX_FLAG) and receive != transmit


@dataclass(slots=True)
class InterleaveCounters:
    #: Replies sent in interleaved mode.
    interleaved: int = 0
    #: Requests that asked (origin marked) but whose earlier reply's transmit time is not known: basic replies.
    unknown_origin: int = 0
    #: Transmit times the kernel gave and that were kept.
    captured: int = 0
    #: Kept receive timestamps dropped, oldest first, to stay within the size.
    evicted: int = 0


class TransmitTable:
    """Receive timestamps of replies sent (marked) and the transmit time of each as the kernel stamped it.

    :meth:`expect` before a reply that may be followed by an interleaved
    request is sent; :meth:`captured` when its transmit time comes back;
    :meth:`transmit_for` answers the next request's origin. The oldest
    entries go first when more than ``size`` are kept.
    """

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        if size < 1:
            raise ValueError(f"size must be at least 1, not {size}")
        self.size = size
        self.counters = InterleaveCounters()
        self._kept: OrderedDict[int, int | None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._kept)

    def expect(self, receive: int) -> None:
        """A reply carrying the (marked) receive timestamp ``receive`` is being sent; its transmit time is to come."""
        kept = self._kept
        kept[receive] = None
        kept.move_to_end(receive)
        while len(kept) > self.size:
            kept.popitem(last=False)
            self.counters.evicted += 1

    def awaiting(self, receive: int) -> bool:
        """Whether the transmit time of the reply carrying ``receive`` is still to come."""
        return receive in self._kept and self._kept[receive] is None

    def captured(self, receive: int, transmit: int) -> bool:
        """The reply carrying ``receive`` left at ``transmit`` (an NTP timestamp); False when it was not expected."""
        if not self.awaiting(receive):
            return False
        self._kept[receive] = mark_transmit(transmit)
        self.counters.captured += 1
        return True

    def transmit_for(self, origin: int) -> int | None:
        """The transmit time of the reply whose receive timestamp a request names as its origin, if kept."""
        return self._kept.get(origin)

"""Mode 6 (RFC 9327) from a status snapshot: what ntpq reads, octet layout, sizes, refusals, rate limit."""

from __future__ import annotations

import re
import struct
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st
from status_sample import NOW, SNAP, source

from appliance.ntp import access as acl
from appliance.ntp import mode6
from appliance.ntp.keys import Key
from appliance.ntp.mode6 import HEADER, MAX_DATA, ControlHandler, datagrams, fragments
from appliance.ntp.mru import MruTable
from appliance.sources.client import Association, ClientSettings
from appliance.state import SystemState
from appliance.status.collect import source_status
from appliance.status.snapshot import ClockStatus
from appliance.status.variables import encode, peer_variables
from appliance.timebase import NS_PER_S, ntp64_from_ns

STATE = SystemState(leap=0, stratum=1, precision=-20, root_dispersion_ns=37_000, refid=b"PPS\0", reference_ns=NOW)


def request(opcode: int, assoc: int = 0, seq: int = 7, data: bytes = b"") -> bytes:
    pad = b"\0" * (-len(data) % 4)
    return HEADER.pack((2 << 3) | 6, opcode, seq, 0, assoc, 0, len(data)) + data + pad


def ask(handler: ControlHandler, data: bytes, flags: int = 0, now_ns: int = NOW) -> bytes | None:
    return handler.handle(data, flags, STATE, now_ns)


def handler() -> ControlHandler:
    return ControlHandler(snapshot=lambda: SNAP, version="stratum1 test", host=("x86_64", "Linux/6.1"))


def body(reply: bytes) -> tuple[int, int, int, int, bytes]:
    _b0, b1, _seq, status, assoc, _offset, count = HEADER.unpack_from(reply)
    return b1, status, assoc, count, reply[12 : 12 + count]


def test_readstat_lists_every_source_with_its_peer_status_word() -> None:
    reply = ask(handler(), request(mode6.OP_READSTAT))
    assert reply is not None
    b1, status, _, count, data = body(reply)
    assert b1 == 0x80 | mode6.OP_READSTAT
    assert status == 0 << 14 | mode6.SOURCE_UHF << 8  # leap none, sync_uhf_radio (as ntpd says for a GPS)
    pairs = [struct.unpack_from("!HH", data, i) for i in range(0, count, 4)]
    assert [a for a, _ in pairs] == [1, 2, 3]
    # configured + reachable, selection code: o=7 (pps.peer), +=4 (candidate), #=5 (backup)
    assert [w >> 8 for _, w in pairs] == [0x97, 0x94, 0x95]


def test_readstat_of_one_association_carries_its_variables_as_ntpd() -> None:
    """ntpd's read_status answers a peer's status word and its variables (stratum1 sent the word alone)."""
    reply = ask(handler(), request(mode6.OP_READSTAT, 2))
    assert reply is not None
    _b1, status, assoc, _count, data = body(reply)
    assert assoc == 2 and status == mode6.peer_status_word(SNAP.sources[1].reach, SNAP.sources[1].selection_code)
    assert data == encode(peer_variables(SNAP.sources[1], SNAP.system.precision))


def test_minimal_request_gets_exactly_what_it_asks_for() -> None:
    """A 12-octet READSTAT gets 12 + 4 per source: the answer, nothing padded or repeated."""
    reply = ask(handler(), request(mode6.OP_READSTAT))
    assert reply is not None and len(reply) == 12 + 4 * len(SNAP.sources)
    for op, assoc in ((mode6.OP_READVAR, 0), (mode6.OP_READVAR, 1), (mode6.OP_READVAR, 2), (mode6.OP_READCLOCK, 1)):
        reply = ask(handler(), request(op, assoc))
        assert reply is not None
        _, _, _, count, data = body(reply)
        assert len(reply) == 12 + count + (-count % 4) <= 12 + MAX_DATA
        assert not reply[1] & 0x20  # one datagram: no "more" bit
        assert data.endswith(b"\r\n")


def test_system_variables_as_ntpq_and_ntpstat_read_them() -> None:
    reply = ask(handler(), request(mode6.OP_READVAR))
    assert reply is not None
    text = body(reply)[4].decode()
    assert "stratum=1, precision=-20, rootdelay=0.000, rootdisp=0.037," in text
    assert "refid=PPS" in text and "peer=1," in text and "tc=4" in text
    assert 'version="stratum1 test"' in text and 'processor="x86_64"' in text
    assert max(len(line) for line in text.split("\r\n")) <= 72
    assert "mintc" not in text  # ntpd's minimum time constant: the discipline has none (it said a constant 0)


def test_the_served_state_wins_over_the_snapshot() -> None:
    """A client told "unsynchronised" (public_unsync) reads leap 3 and stratum 16 in the variables too."""
    unsync = SystemState()
    reply = handler().handle(request(mode6.OP_READVAR), 0, unsync, NOW)
    assert reply is not None
    assert body(reply)[1] >> 14 == 3
    assert "leap=3, stratum=16," in body(reply)[4].decode()


def test_peer_variables_and_names_asked_for() -> None:
    reply = ask(handler(), request(mode6.OP_READVAR, 2))
    assert reply is not None
    b1, status, assoc, _, data = body(reply)
    assert assoc == 2 and status >> 8 == 0x94
    text = data.decode()
    assert "srcadr=192.0.2.10," in text and "stratum=2," in text and "reach=0xff," in text
    assert "offset=0.051000," in text and "delay=0.412000," in text and 'srchost="ntp.example.org"' in text
    reply = ask(handler(), request(mode6.OP_READVAR, 2, data=b"offset,stratum"))
    assert reply is not None and body(reply)[4] == b"offset=0.051000, stratum=2\r\n"
    reply = ask(handler(), request(mode6.OP_READVAR, 2, data=b"nosuchvar"))
    assert reply is not None and reply[1] & 0x40 and body(reply)[1] >> 8 == mode6.ERR_UNKNOWNVAR


def test_clock_variables_carry_the_gps_fix() -> None:
    reply = ask(handler(), request(mode6.OP_READCLOCK, 1))
    assert reply is not None
    text = body(reply)[4].decode()
    assert 'name="GPS"' in text and "satellites=9," in text and "pps=1" in text and "nmea_delay=180.000" in text
    reply = ask(handler(), request(mode6.OP_READCLOCK, 2))  # a server is no clock
    assert reply is not None and reply[1] & 0x40 and body(reply)[1] >> 8 == mode6.ERR_ASSOC
    reply = ask(handler(), request(mode6.OP_READCLOCK, 0))  # 0: the system peer, a clock
    # answered in association 0's name, as ntpd does ('ntpq -c cl' said "Association ID 1 doesn't match
    # expected 0")
    assert reply is not None and body(reply)[2] == 0 and 'name="GPS"' in body(reply)[4].decode()


def test_each_clock_answers_cv_with_its_own_state() -> None:
    """The GPS's fix and pulses only for the receiver they are of; counts and fudge times each clock's own
    (they were constants: poll was the poll exponent, noreply/badformat/baddata 0, fudgetime1 0.0)."""
    second = source(4, "NMEA(1)", "refclock", " ", address="127.127.20.1", refid="GPS1", reach=0)
    clocks = (*SNAP.clocks, ClockStatus("NMEA(1)", "NMEA receiver on a serial port /dev/ttyUSB1", polls=9, noreply=9))
    snap = replace(SNAP, sources=(*SNAP.sources, second), clocks=clocks)
    h = ControlHandler(snapshot=lambda: snap)
    gps = variables(h.handle(request(mode6.OP_READCLOCK, 1), 0, STATE, NOW) or b"")
    assert (gps["poll"], gps["noreply"], gps["badformat"], gps["baddata"]) == ("30", "1", "3", "2")
    assert (gps["fudgetime1"], gps["fudgetime2"]) == ("50.000", "350.000")
    assert gps["device"] == f'"{SNAP.clocks[0].device}"' and gps["satellites"] == "9"
    other = variables(h.handle(request(mode6.OP_READCLOCK, 4), 0, STATE, NOW) or b"")
    assert other["device"] == '"NMEA receiver on a serial port /dev/ttyUSB1"' and other["refid"] == "GPS1"
    assert (other["poll"], other["noreply"]) == ("9", "9")
    assert not {"fix", "satellites", "pps", "locked", "pulses", "badformat", "fudgetime1"} & set(other)
    local = variables(h.handle(request(mode6.OP_READCLOCK, 3), 0, STATE, NOW) or b"")
    assert local["device"] == '"the undisciplined local clock"' and "satellites" not in local
    assert "poll" in local and "noreply" not in local


def test_unknown_association_is_an_error() -> None:
    reply = ask(handler(), request(mode6.OP_READVAR, 99))
    assert reply is not None and reply[1] & 0x40 and body(reply)[1] >> 8 == mode6.ERR_ASSOC


def test_writes_and_traps_never_happen_and_mru_is_refused() -> None:
    for op in (mode6.OP_WRITEVAR, mode6.OP_WRITECLOCK, mode6.OP_CONFIGURE, mode6.OP_SAVECONFIG, mode6.OP_SETTRAP):
        reply = ask(handler(), request(op, data=b"leap=3"))
        assert reply is not None and len(reply) == 12 and reply[1] & 0x40
        assert body(reply)[1] >> 8 == mode6.ERR_PERMISSION
    for op in (mode6.OP_REQ_NONCE, mode6.OP_READ_MRU):
        reply = ask(handler(), request(op), flags=acl.NOMRULIST)
        assert reply is not None and body(reply)[1] >> 8 == mode6.ERR_PERMISSION


def test_responses_are_never_answered() -> None:
    data = bytearray(request(mode6.OP_READSTAT))
    data[1] |= 0x80
    assert ask(handler(), bytes(data)) is None


def test_error_and_more_bits_and_an_offset_are_dropped_as_ntpd_drops_them() -> None:
    """A READVAR with the E bit was answered in full (368 octets); ntpd's process_control drops it, and
    one with the M bit or a nonzero Offset (a fragment of a request, which ntpq never sends)."""
    h = handler()
    for bit in (0x40, 0x20):
        data = bytearray(request(mode6.OP_READVAR))
        data[1] |= bit
        assert h.handle(bytes(data), 0, STATE, NOW) is None
    offset = HEADER.pack((2 << 3) | 6, mode6.OP_READVAR, 7, 0, 0, 4, 0)
    assert h.handle(offset, 0, STATE, NOW) is None
    assert h.handle(request(mode6.OP_READVAR), 0, STATE, NOW) is not None  # a plain one still is


def test_rate_limited_per_asking_address() -> None:
    """One host flooding cannot lock out another: the bucket was shared by all askers, so a LAN host at
    100 requests a second left the local ntpq and the LCD unanswered."""
    h = handler()
    answered = sum(h.handle(request(mode6.OP_READSTAT), 0, STATE, NOW, "192.168.0.50") is not None for _ in range(100))
    assert answered == mode6.BURST and h.rate_limited == 100 - mode6.BURST
    assert h.handle(request(mode6.OP_READSTAT), 0, STATE, NOW, "192.168.0.50") is None
    assert h.handle(request(mode6.OP_READSTAT), 0, STATE, NOW, "127.0.0.1") is not None  # its own bucket
    later = NOW + NS_PER_S
    assert h.handle(request(mode6.OP_READSTAT), 0, STATE, later, "192.168.0.50") is not None  # tokens come back
    # the buckets kept are bounded: the least recently asking address is forgotten (and starts full)
    for i in range(mode6.MAX_ASKERS):
        h.handle(request(mode6.OP_READSTAT), 0, STATE, later, f"10.0.{i // 256}.{i % 256}")
    assert len(h._buckets) == mode6.MAX_ASKERS and "192.168.0.50" not in h._buckets


def test_without_a_snapshot_readstat_is_the_header_alone() -> None:
    reply = ControlHandler().handle(request(mode6.OP_READSTAT), 0, STATE, NOW)
    assert reply is not None and len(reply) == 12


def reassemble(reply: bytes) -> tuple[list[bytes], bytes]:
    """The datagrams of an answer and their data put together, checking the fragment fields as ntpq does."""
    frags = datagrams(reply)
    assert b"".join(frags) == reply
    got = b""
    for i, f in enumerate(frags):
        b1, _, _, count, chunk = body(f)
        assert HEADER.unpack_from(f)[5] == len(got) and len(f) % 4 == 0 and len(f) <= 12 + MAX_DATA
        assert bool(b1 & 0x20) == (i < len(frags) - 1)  # M on all but the last
        got += chunk
    return frags, got


def test_a_long_answer_goes_in_fragments_as_ntpd_sends_it() -> None:
    long = replace(SNAP.sources[1], name="x" * 300)
    snap = replace(SNAP, sources=(long,))
    reply = ask(ControlHandler(snapshot=lambda: snap), request(mode6.OP_READVAR, 2))
    assert reply is not None
    frags, data = reassemble(reply)
    assert len(frags) == 2 and len(frags[0]) == 12 + MAX_DATA
    assert data == encode(peer_variables(long, snap.system.precision))  # the whole answer, nothing cut
    assert data.endswith(b'srchost="' + b"x" * 300 + b'"\r\n')


def test_an_association_list_longer_than_a_fragment() -> None:
    many = tuple(replace(SNAP.sources[1], assoc_id=1000 + i) for i in range(200))
    snap = replace(SNAP, sources=many)
    reply = ask(ControlHandler(snapshot=lambda: snap), request(mode6.OP_READSTAT))
    assert reply is not None
    frags, data = reassemble(reply)
    assert len(frags) == 2 and len(reply) == 2 * 12 + 4 * 200  # no more than the pairs and two headers
    assert [struct.unpack_from("!H", data, i)[0] for i in range(0, len(data), 4)] == [1000 + i for i in range(200)]


def test_past_the_fragment_cap_answers_are_cut_at_a_whole_variable() -> None:
    huge = replace(SNAP.sources[1], name="x" * (mode6.MAX_FRAGMENTS * MAX_DATA))
    snap = replace(SNAP, sources=(huge,))
    reply = ask(ControlHandler(snapshot=lambda: snap), request(mode6.OP_READVAR, 2))
    assert reply is not None
    frags, data = reassemble(reply)
    assert len(frags) <= mode6.MAX_FRAGMENTS
    assert data.endswith(b"\r\n") and b"srcadr=192.0.2.10" in data and b"srchost" not in data


def test_the_rate_limit_counts_datagrams() -> None:
    long = replace(SNAP.sources[1], name="x" * 300)  # a two-fragment answer
    snap = replace(SNAP, sources=(long,))
    h = ControlHandler(snapshot=lambda: snap)
    answers = [ask(h, request(mode6.OP_READVAR, 2), now_ns=NOW) for _ in range(mode6.BURST)]
    sent = sum(len(datagrams(a)) for a in answers if a is not None)
    assert sent == mode6.BURST and h.rate_limited == mode6.BURST // 2


@given(st.binary(min_size=0, max_size=2000))
def test_fragments_reassemble(data: bytes) -> None:
    frags = fragments(2, mode6.OP_READVAR, 9, 0x0400, 0, data)
    got = b""
    for i, f in enumerate(frags):
        b1, _, _, count, chunk = body(f)
        offset = HEADER.unpack_from(f)[5]
        assert offset == len(got) and count <= MAX_DATA and len(f) % 4 == 0
        assert bool(b1 & 0x20) == (i < len(frags) - 1)
        got += chunk
    assert got == data


def test_encode_breaks_lines_as_ntpd() -> None:
    text = encode([(f"name{i}", "x" * 10) for i in range(10)]).decode()
    lines = text.split("\r\n")
    assert lines[-1] == "" and all(len(line) <= 72 for line in lines)
    assert text.count("name") == 10


# -- the MRU list (REQ_NONCE, READ_MRU) --------------------------------------------------------------

ASKER = "127.0.0.1"


def clients(n: int) -> MruTable:
    t = MruTable()
    for i in range(n):
        t.record(f"192.0.2.{i + 1}", 40000 + i, NOW - (n - i) * NS_PER_S, 0x23, acl.KOD | acl.LIMITED)
        t.record(f"192.0.2.{i + 1}", 40000 + i, NOW - (n - i) * NS_PER_S + 1000, 0x23, acl.KOD | acl.LIMITED)
    return t


def mru(h: ControlHandler, table: MruTable, params: bytes, now_ns: int = NOW, ip: str = ASKER) -> dict[str, str]:
    """Ask for a nonce, then READ_MRU with it and ``params``; the answer's variables, in order."""
    reply = h.handle(request(mode6.OP_REQ_NONCE), 0, STATE, now_ns, ip, table)
    assert reply is not None
    nonce = body(reply)[4].strip()
    reply = h.handle(request(mode6.OP_READ_MRU, data=nonce + params), 0, STATE, now_ns, ip, table)
    assert reply is not None
    return variables(reply)


def variables(reply: bytes) -> dict[str, str]:
    text = b"".join(body(d)[4] for d in datagrams(reply)).decode()
    return dict(part.strip().split("=", 1) for part in text.replace("\r\n", "").split(",") if part.strip())


def test_nonce_is_ntpds_shape_and_good_only_for_its_address_and_16_s() -> None:
    h = handler()
    reply = h.handle(request(mode6.OP_REQ_NONCE), 0, STATE, NOW, ASKER, MruTable())
    assert reply is not None
    text = body(reply)[4]
    assert re.fullmatch(rb"nonce=[0-9a-f]{24}\r\n", text)  # as the capture: nonce=eeba1db55b4badc0578b2887
    nonce = text[6:30].decode()
    assert h.nonce_ok(nonce, ASKER, NOW) and h.nonce_ok(nonce, ASKER, NOW + 16 * NS_PER_S)
    assert not h.nonce_ok(nonce, ASKER, NOW + 17 * NS_PER_S)
    assert not h.nonce_ok(nonce, "127.0.0.2", NOW)
    assert not handler().nonce_ok(nonce, ASKER, NOW)  # another run's secret
    assert not h.nonce_ok(nonce[:-1] + ("0" if nonce[-1] != "0" else "1"), ASKER, NOW)


def test_read_mru_without_a_good_nonce_is_dropped() -> None:
    h = handler()
    for data in (b"frags=8", b"nonce=00000000000000000000000, frags=8", b"nonce=zz, frags=8"):
        assert h.handle(request(mode6.OP_READ_MRU, data=data), 0, STATE, NOW, ASKER, clients(3)) is None
    assert h.bad_nonces == 3


def test_read_mru_lists_every_client_oldest_first_as_ntpd_does() -> None:
    table = clients(3)
    got = mru(handler(), table, b", frags=32")
    names = list(got)
    assert names[0] == "nonce" and names[-2:] == ["now", "last.newest"]
    assert names[1:7] == ["addr.0", "last.0", "first.0", "ct.0", "mv.0", "rs.0"]
    assert [got[f"addr.{i}"] for i in range(3)] == ["192.0.2.1:40000", "192.0.2.2:40001", "192.0.2.3:40002"]
    e = table.entries()[0]
    assert got["ct.0"] == "2" and got["mv.0"] == "35" and got["rs.0"] == "0x420"  # RES_KOD | RES_LIMITED
    t = ntp64_from_ns(e.last_ns)
    assert got["last.0"] == f"0x{t >> 32:08x}.{t & 0xFFFFFFFF:08x}"
    assert re.fullmatch(r"0x[0-9a-f]{8}\.[0-9a-f]{8}", got["first.0"]) and got["first.0"] != got["last.0"]
    assert got["last.newest"] == got["last.2"]


def test_read_mru_goes_on_after_the_newest_entry_the_asker_holds() -> None:
    table = clients(5)
    h = handler()
    first = mru(h, table, b", limit=2")
    assert [first.get(f"addr.{i}") for i in range(3)] == ["192.0.2.1:40000", "192.0.2.2:40001", None]
    assert "now" not in first  # not whole: ntpq asks on
    # ntpq gives back what it holds, newest first
    go_on = f", limit=2, addr.0={first['addr.1']}, last.0={first['last.1']}"
    go_on += f", addr.1={first['addr.0']}, last.1={first['last.0']}"
    second = mru(h, table, go_on.encode())
    assert [second.get(f"addr.{i}") for i in range(3)] == ["192.0.2.3:40002", "192.0.2.4:40003", None]
    # the newest it holds was seen again meanwhile (so moved): the one before it is the place to go on from
    table.record("192.0.2.4", 40003, NOW, 0x23, 0)
    go_on = f", addr.0=192.0.2.4:40003, last.0={second['last.1']}, addr.1=192.0.2.3:40002, last.1={second['last.0']}"
    third = mru(h, table, go_on.encode())
    assert [third[f"addr.{i}"] for i in range(2)] == ["192.0.2.5:40004", "192.0.2.4:40003"]
    assert "now" in third
    # none of them is there any more: "unknown variable" (ntpq starts over)
    reply = h.handle(request(mode6.OP_REQ_NONCE), 0, STATE, NOW, ASKER, table)
    assert reply is not None
    stale = body(reply)[4].strip() + b", addr.0=192.0.2.9:1, last.0=0x00000000.00000000"
    reply = h.handle(request(mode6.OP_READ_MRU, data=stale), 0, STATE, NOW, ASKER, table)
    assert reply is not None and body(reply)[1] >> 8 == mode6.ERR_UNKNOWNVAR


def test_read_mru_keeps_to_the_fragments_asked_for_and_to_eight() -> None:
    table = clients(200)
    h = handler()
    for frags in (1, 3, 32):
        reply = h.handle(request(mode6.OP_REQ_NONCE), 0, STATE, NOW, ASKER, table)
        assert reply is not None
        data = body(reply)[4].strip() + f", frags={frags}".encode()
        answer = h.handle(request(mode6.OP_READ_MRU, data=data), 0, STATE, NOW + frags, ASKER, table)
        assert answer is not None
        parts = datagrams(answer)
        assert len(parts) == min(frags, mode6.MAX_FRAGMENTS)
        assert all(len(p) <= 12 + MAX_DATA for p in parts)
        assert b"now=" not in answer  # 200 clients never fit
        h = handler()  # a fresh rate limit


def test_read_mru_filters_and_bad_values() -> None:
    table = clients(3)
    table.record("192.0.2.2", 1, NOW, 0x23, 0)
    got = mru(handler(), table, b", mincount=3")
    assert got.get("addr.0") == "192.0.2.2:1" and "addr.1" not in got
    got = mru(handler(), table, b", resall=0x420")
    assert [got.get(f"addr.{i}") for i in range(3)] == ["192.0.2.1:40000", "192.0.2.3:40002", None]
    h = handler()
    for bad in (b", frags=0", b", limit=x", b", mincount=.5"):
        reply = h.handle(request(mode6.OP_REQ_NONCE), 0, STATE, NOW, ASKER, table)
        assert reply is not None
        reply = h.handle(request(mode6.OP_READ_MRU, data=body(reply)[4].strip() + bad), 0, STATE, NOW, ASKER, table)
        assert reply is not None and reply[1] & 0x40
        assert body(reply)[1] >> 8 == mode6.ERR_BADVALUE


def test_read_mru_numbers_are_read_as_ntpds_sscanf_reads_them() -> None:
    """ntpq sends ``mincount=010`` as ``mincount=10.0`` (int(v, 0) fails, float(v) does not): ntpd's
    ``sscanf("%d")`` reads 10; a "bad value" there made ntpq ask again for ever."""
    table = clients(3)
    table.record("192.0.2.2", 1, NOW, 0x23, 0)
    for params in (b", mincount=3.0", b", mincount=3e0, frags=8.0", b", mincount= 3, limit=10.0, maxlstint=9.5"):
        got = mru(handler(), table, params)
        assert got.get("addr.0") == "192.0.2.2:1" and "addr.1" not in got and "now" in got


def test_read_mru_mindrop_minscore_and_unknown_names_as_ntpd() -> None:
    """``mindrop``/``minscore`` are ntpd's: no drop counts or scores are kept (0 each), so above 0 they list
    nobody, and the list is whole (never "unknown variable", which ntpq takes for a lost starting point);
    a name ntpd does not know is ignored, as ntpd ignores it."""
    table = clients(3)
    for params in (b", mindrop=1", b", minscore=0.5", b", mindrop=1, frags=32"):
        got = mru(handler(), table, params)
        assert list(got) == ["nonce", "now"]
    for params in (b", mindrop=0, minscore=0", b", bogus=1"):
        got = mru(handler(), table, params)
        assert [got.get(f"addr.{i}") for i in range(4)] == [f"192.0.2.{i}:{39999 + i}" for i in (1, 2, 3)] + [None]


def test_an_empty_list_is_whole_at_once() -> None:
    got = mru(handler(), MruTable(), b", frags=32")
    assert list(got) == ["nonce", "now"]


def test_ipv6_clients_are_bracketed_with_their_port() -> None:
    t = MruTable()
    t.record("2001:db8::7", 123, NOW, 0x24, 0)
    assert mru(handler(), t, b"")["addr.0"] == "[2001:db8::7]:123"


def test_read_mru_recent_lists_the_newest_entries_only() -> None:
    """``mrulist recent=3`` on a 20-client table: the 3 most recently seen, whole at once, as ntpd's countdown
    (it was a row limit per answer, so the list started at the oldest and ntpq read all 20)."""
    table = clients(20)
    got = mru(handler(), table, b", frags=8, recent=3")
    newest = [f"192.0.2.{i}:{39999 + i}" for i in (18, 19, 20)]
    assert [got.get(f"addr.{i}") for i in range(4)] == [*newest, None]
    assert "now" in got and got["last.newest"] == got["last.2"]
    got = mru(handler(), table, b", limit=2, recent=3")  # the first of the three, and ntpq goes on from there
    assert [got.get(f"addr.{i}") for i in range(3)] == [*newest[:2], None] and "now" not in got
    got = mru(handler(), table, b", recent=30")
    assert len([k for k in got if k.startswith("addr.")]) == 20


def test_sysinfo_and_sysstats_variables_by_name() -> None:
    """ntpq ``sysinfo`` asks for ``peeradr`` and ``peermode`` (without them ntpq 1.2.2 died with a traceback),
    ``sysstats`` for the ``ss_*`` counters: answered by name, from the snapshot's counters; ``rv`` is as before."""
    names = b"peeradr,peermode,rootdist,authdelay,ss_uptime,ss_received,ss_received_r,ss_limited,ss_kodsent"
    names += b",ss_restricted,ss_processed,ss_badauth,ss_numctlreq,mru_depth,mru_maxdepth,mru_oldest_age"
    table = clients(3)
    counters = replace(SNAP.counters, kod=2, rate_limited=5, crypto_nak=1)
    snap = replace(SNAP, counters=counters)
    h = ControlHandler(snapshot=lambda: snap)
    reply = h.handle(request(mode6.OP_READVAR, data=names), 0, STATE, NOW, ASKER, table)
    assert reply is not None and not reply[1] & 0x40
    got = variables(reply)
    assert got["peeradr"] == "127.127.20.0:123" and got["peermode"] == "3"  # the GPS, a client association
    assert got["rootdist"] == "0.037"
    assert got["ss_uptime"] == "60" and got["ss_received"] == got["ss_received_r"] == "10"
    assert (got["ss_limited"], got["ss_kodsent"], got["ss_badauth"]) == ("7", "2", "1")
    assert (got["ss_restricted"], got["ss_processed"], got["ss_numctlreq"]) == ("1", "8", "3")
    oldest_age = (NOW - table.entries()[0].last_ns) // NS_PER_S
    assert got["mru_depth"] == "3" and got["mru_maxdepth"] == str(table.maxdepth)
    assert got["mru_oldest_age"] == str(oldest_age)
    # no system peer: ntpd's 0.0.0.0:0 and mode 0, which ntpq prints as "unspec"
    nopeer = replace(SNAP, system=replace(SNAP.system, peer=0))
    reply = ControlHandler(snapshot=lambda: nopeer).handle(
        request(mode6.OP_READVAR, data=b"peeradr,peermode"), 0, STATE, NOW
    )
    assert reply is not None and variables(reply) == {"peeradr": "0.0.0.0:0", "peermode": "0"}
    # the default list (rv) does not carry them
    reply = ask(handler(), request(mode6.OP_READVAR))
    assert reply is not None and b"ss_" not in reply and b"peeradr" not in reply
    # a counter not kept is unknown, so ntpq shows "?" for it
    reply = ask(handler(), request(mode6.OP_READVAR, data=b"ss_oldver"))
    assert reply is not None and body(reply)[1] >> 8 == mode6.ERR_UNKNOWNVAR


def test_a_server_on_its_own_port_is_named_with_it() -> None:
    server = replace(SNAP.sources[1], name="192.0.2.10:11123")
    snap = replace(SNAP, sources=(SNAP.sources[0], server), system=replace(SNAP.system, peer=2))
    reply = ControlHandler(snapshot=lambda: snap).handle(request(mode6.OP_READVAR, data=b"peeradr"), 0, STATE, NOW)
    assert reply is not None and variables(reply) == {"peeradr": "192.0.2.10:11123"}


def test_a_keyed_server_shows_auth_ok_its_keyid_and_its_port() -> None:
    """``server 127.0.0.5 port 11123 key 1`` showed ``auth none``, ``keyid=0``, ``srcport=123``."""
    key = Key(1, "SHA1", b"secret")
    assoc = Association("192.0.2.10", NOW, ClientSettings(key=key), port=11123)
    estimate = assoc.source.estimate(NOW)
    assert estimate.keyid == 1
    keyed = replace(source_status(estimate, "*", 2), reach=0o377)
    snap = replace(SNAP, sources=(SNAP.sources[0], keyed))
    h = ControlHandler(snapshot=lambda: snap)
    reply = h.handle(request(mode6.OP_READSTAT), 0, STATE, NOW)
    assert reply is not None
    words = dict(struct.unpack_from("!HH", body(reply)[4], i) for i in range(0, 8, 4))
    # configured, authentication enabled, authentic, reachable: ntpq's "auth ok"; the GPS's unchanged
    assert words[2] >> 12 == 0xF and words[1] >> 12 == 0x9
    got = variables(h.handle(request(mode6.OP_READVAR, 2), 0, STATE, NOW) or b"")
    assert got["keyid"] == "1" and got["srcport"] == "11123" and got["srcadr"] == "192.0.2.10"
    # not reached yet: enabled, not authentic ("auth bad", as ntpd says before a good reply)
    assert mode6.peer_status_word(0, 0, 1) >> 12 == 0xC and mode6.peer_status_word(0, 0) >> 12 == 0x8

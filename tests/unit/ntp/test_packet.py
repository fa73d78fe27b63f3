"""The packet codec: header round trip, versions, extension fields (RFC 7822), MACs, bad input."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from appliance.ntp.packet import (
    HEADER_LEN,
    MODE_CLIENT,
    MODE_SERVER,
    ExtensionField,
    NtpPacket,
    PacketError,
    peek,
    refid_from_text,
    refid_text,
)

packets = st.builds(
    NtpPacket,
    leap=st.integers(0, 3),
    version=st.integers(1, 4),
    mode=st.integers(0, 5),
    stratum=st.integers(0, 255),
    poll=st.integers(-128, 127),
    precision=st.integers(-128, 127),
    root_delay=st.integers(0, 2**32 - 1),
    root_dispersion=st.integers(0, 2**32 - 1),
    refid=st.binary(min_size=4, max_size=4),
    reference=st.integers(0, 2**64 - 1),
    origin=st.integers(0, 2**64 - 1),
    receive=st.integers(0, 2**64 - 1),
    transmit=st.integers(0, 2**64 - 1),
)


@given(packets)
def test_header_round_trip(p: NtpPacket) -> None:
    data = p.encode()
    assert len(data) == HEADER_LEN
    assert NtpPacket.decode(data) == p


def test_field_positions_match_rfc_diagram() -> None:
    p = NtpPacket(leap=1, version=4, mode=MODE_SERVER, stratum=2, poll=6, precision=-20, transmit=0x0102030405060708)
    data = p.encode()
    assert data[0] == (1 << 6) | (4 << 3) | 4
    assert data[1] == 2 and data[2] == 6 and struct.unpack("b", data[3:4])[0] == -20
    assert data[40:48] == bytes(range(1, 9))


def test_extension_fields_and_mac() -> None:
    ef = ExtensionField(0x0104, b"\x01" * 32)
    p = NtpPacket(mode=MODE_CLIENT, extensions=(ef,), mac=b"\0\0\0\1" + b"\xaa" * 16)
    data = p.encode()
    assert len(data) == 48 + 36 + 20
    q = NtpPacket.decode(data)
    assert q.extensions == (ef,) and q.mac == p.mac


def test_short_extension_value_is_padded_to_minimum() -> None:
    assert len(ExtensionField(1, b"ab").encode()) == 16


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "short"),
        (b"\x23" * 47, "short"),
        (bytes([0x03]) + b"\0" * 47, "version"),  # version 0
        (bytes([0x3B]) + b"\0" * 47, "version"),  # version 7
        (b"\x23" + b"\0" * 47 + b"\0" * 7, "extension"),  # 7 stray octets
        (b"\x23" + b"\0" * 47 + struct.pack("!HH", 1, 12) + b"\0" * 12, "extension"),  # EF length below 16
        (b"\x23" + b"\0" * 47 + struct.pack("!HH", 1, 18) + b"\0" * 14, "extension"),  # not a multiple of 4
        (b"\x23" + b"\0" * 47 + struct.pack("!HH", 1, 64) + b"\0" * 28, "extension"),  # longer than the packet
        (b"\x1b" + b"\0" * 47 + b"\0" * 16, "long"),  # v3 with 16 trailing octets
        (bytes([0x26]) + b"\0" * 47, "mode"),  # mode 6 is not a time packet
    ],
)
def test_malformed_packets_raise_packet_error(data: bytes, reason: str) -> None:
    with pytest.raises(PacketError) as e:
        NtpPacket.decode(data)
    assert e.value.reason == reason


@given(st.binary(max_size=200))
def test_decode_never_raises_anything_but_packet_error(data: bytes) -> None:
    try:
        NtpPacket.decode(data)
    except PacketError:
        pass


def test_peek_and_refids() -> None:
    assert peek(b"\x23") == (4, 3)
    assert refid_from_text("GPS") == b"GPS\0"
    assert refid_text(b"PPS\0", 1) == "PPS"
    assert refid_text(bytes([192, 0, 2, 1]), 2) == "192.0.2.1"
    with pytest.raises(ValueError):
        refid_from_text("TOOLONG")


def test_kiss_code() -> None:
    assert NtpPacket(mode=MODE_SERVER, stratum=0, refid=b"RATE").kiss_code == "RATE"
    assert NtpPacket(mode=MODE_SERVER, stratum=1, refid=b"GPS\0").kiss_code is None

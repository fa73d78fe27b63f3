"""Symmetric keys: ntpd's key file, trustedkey, the MAC, and what the server and the upstream client do with them."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path
from types import MappingProxyType

import pytest

from appliance.config.errors import ConfigError
from appliance.config.model import Discard, Location, RestrictRule, ServerLine
from appliance.config.parser import load_config, parse_config
from appliance.ntp.access import AccessTable
from appliance.ntp.exchange import client_request
from appliance.ntp.interleave import mark_transmit
from appliance.ntp.keys import KeyFileError, KeyRing, describe_keys, parse_keys, parse_trusted
from appliance.ntp.packet import MODE_SERVER, NtpPacket
from appliance.ntp.ratelimit import RateLimiter
from appliance.ntp.server import NtpServer, finish_reply
from appliance.sources.client import Association, ClientSettings
from appliance.state import local_clock_state
from appliance.timebase import NS_PER_S, ntp64_from_ns

NOW = 1_795_000_000 * NS_PER_S
SHA1_HEX = "8a6bd2fe0b8b1b7bb4b7d2f2f9a6b0e1c6c9b1a2"
KEY_FILE = f"""# keyno type key
1 SHA1 {SHA1_HEX}
2 MD5 a-short-secret   # up to 20 characters: ASCII
3 sha256 HEX:{SHA1_HEX}
4 SHA1 ASCII:only-from-the-lan 192.168.0.0/24,10.0.0.5
9 SHA1 {SHA1_HEX}
"""


def ring(trusted: tuple[int, ...] = (1, 2, 3, 4)) -> KeyRing:
    return KeyRing(MappingProxyType(parse_keys(KEY_FILE, "ntp.keys")), frozenset(trusted))


# -- the key file ---------------------------------------------------------------------------------------------


def test_the_key_file_as_ntpd_ntpsec_and_chrony_write_it() -> None:
    keys = parse_keys(KEY_FILE, "ntp.keys")
    assert sorted(keys) == [1, 2, 3, 4, 9]
    assert keys[1].secret == bytes.fromhex(SHA1_HEX) and keys[1].kind == "SHA1"
    assert keys[2].secret == b"a-short-secret" and keys[2].kind == "MD5"
    assert keys[3].secret == bytes.fromhex(SHA1_HEX) and keys[3].kind == "SHA256"
    assert keys[4].secret == b"only-from-the-lan" and len(keys[4].networks) == 2
    assert all(SHA1_HEX not in repr(k) and "secret" not in repr(k) for k in keys.values())  # never logged


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("1 SHA1\n", 1, "keyno type key"),
        ("\n0 SHA1 abc\n", 2, "not a key number"),
        ("70000 SHA1 abc\n", 1, "not a key number"),
        ("1 AES128CMAC 00112233445566778899aabbccddeeff\n", 1, "CMAC) is not supported"),
        ("1 CRC32 abc\n", 1, "unknown type 'CRC32'"),
        ("1 SHA1 8a6bd2fe0b8b1b7bb4b7d2f2f9a6b0e1c6c9b1zz\n", 1, "hexadecimal, but it is not"),
        ("1 SHA1 abc\n# c\n1 MD5 def\n", 3, "key 1 again (first on line 1)"),
        ("1 SHA1 abc 192.168.0.300\n", 1, "not an address or network"),
        ("1 SHA1 abc 10.0.0.1 more\n", 1, "after the addresses"),
        ("1 SHA1 HEX:\n", 1, "empty"),
    ],
)
def test_a_bad_key_line_names_its_file_and_line_never_the_secret(text: str, line: int, words: str) -> None:
    with pytest.raises(KeyFileError) as e:
        parse_keys(text, "/etc/ntp.keys")
    assert str(e.value).startswith(f"/etc/ntp.keys:{line}: ") and words in str(e.value)
    assert "zz" not in str(e.value)


def test_every_bad_key_line_is_named_at_once(tmp_path: Path) -> None:
    text = "1 SHA1 abc\n2 CRC32 abc\n3 SHA1\n4 MD5 def\n1 MD5 ghi\n"
    with pytest.raises(KeyFileError) as e:
        parse_keys(text, "/etc/ntp.keys")
    assert [k.line for k in (e.value, *e.value.others)] == [2, 3, 5]
    keys = tmp_path / "ntp.keys"
    keys.write_text(text)
    keys.chmod(0o600)
    conf = tmp_path / "ntp.conf"
    conf.write_text(f"sever x\nkeys {keys}\ntrustedkey 1\nrestrict default nomodfy\n")
    with pytest.raises(ConfigError) as c:
        load_config(conf)
    where = [c.value.location, *(m.location for m in c.value.more)]
    assert where == [
        Location(str(conf), 1),
        *(Location(str(keys), n) for n in (2, 3, 5)),
        Location(str(conf), 4),
    ]


def test_trustedkey_numbers_and_ntpsec_ranges() -> None:
    assert parse_trusted(["1", "(3", "...", "5)", "9"]) == {1, 3, 4, 5, 9}
    assert parse_trusted(["(", "7", "...", "7", ")"]) == {7}
    for bad in (["0"], ["x"], ["(5", "...", "3)"], ["(1", "..", "3)"], ["(1", "..."]):
        with pytest.raises(ValueError):
            parse_trusted(bad)


# -- the MAC ----------------------------------------------------------------------------------------------------


def test_the_mac_is_the_digest_of_key_then_packet_cut_to_20_octets() -> None:
    r = ring()
    packet = client_request(NOW)[0]
    assert r.keys[1].mac(packet) == struct.pack("!I", 1) + hashlib.sha1(bytes.fromhex(SHA1_HEX) + packet).digest()
    assert r.keys[2].mac(packet) == struct.pack("!I", 2) + hashlib.md5(b"a-short-secret" + packet).digest()
    sha256 = r.keys[3].mac(packet)
    assert len(sha256) == 24 and sha256[4:] == hashlib.sha256(bytes.fromhex(SHA1_HEX) + packet).digest()[:20]


def test_only_a_trusted_keys_good_mac_from_an_allowed_address_checks() -> None:
    r = ring()
    packet = client_request(NOW)[0]
    mac = r.keys[1].mac(packet)
    assert r.check(packet, mac) is r.keys[1]
    assert r.check(packet[:-1] + b"\x01", mac) is None  # the packet changed
    assert r.check(packet, mac[:-1] + bytes([mac[-1] ^ 1])) is None  # the digest changed
    assert r.check(packet, r.keys[9].mac(packet)) is None  # key 9 is in the file, not trusted
    assert r.check(packet, b"\0\0\0\0") is None  # a crypto-NAK
    assert r.check(packet, r.keys[2].mac(packet)[:-4]) is None  # cut short
    lan = r.keys[4].mac(packet)
    assert r.check(packet, lan, "192.168.0.7") is r.keys[4] and r.check(packet, lan, "::ffff:10.0.0.5") is r.keys[4]
    assert r.check(packet, lan, "203.0.113.5") is None


def test_the_log_line_says_how_many_and_which_never_a_secret() -> None:
    line = describe_keys(ring((1, 2, 7)), "/etc/ntp.keys")
    assert line == "5 from /etc/ntp.keys (1 MD5, 3 SHA1, 1 SHA256), trusted: 1 2"
    assert SHA1_HEX not in line


# -- the configuration --------------------------------------------------------------------------------------------


def conf(text: str, keys: str = KEY_FILE) -> tuple[object, list[str]]:
    read: list[str] = []

    def loader(path: str) -> str:
        read.append(path)
        return keys

    c = parse_config(text, "/etc/ntp.conf", include_loader=loader)
    return c, read


def test_keys_and_trustedkey_lines_make_the_ring() -> None:
    c, read = conf("keys /etc/ntp.keys\ntrustedkey 1 2\ntrustedkey (3 ... 4)\nserver 192.0.2.1 key 1 iburst\n")
    assert read == ["/etc/ntp.keys"]
    assert c.keys_file == "/etc/ntp.keys" and c.keys.trusted == {1, 2, 3, 4}  # type: ignore[attr-defined]
    assert c.warnings == ()  # type: ignore[attr-defined]
    _, read = conf("keys ntp.keys\n")
    assert read == ["/etc/ntp.keys"]  # relative to the configuration's directory


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ("server 192.0.2.1 key 1\n", "/etc/ntp.conf:1", "no 'keys' file is configured"),
        ("keys /k\ntrustedkey 1\nserver 192.0.2.1 key 5\n", "/etc/ntp.conf:3", "key 5 is not in the key file /k"),
        ("keys /k\ntrustedkey 1\npool pool.ntp.org key 9\n", "/etc/ntp.conf:3", "key 9 is not trusted"),
        ("trustedkey 0\n", "/etc/ntp.conf:1", "not a key number"),
        ("keys /k\n", "/k:1", "unknown type"),
    ],
)
def test_key_errors_name_the_line(text: str, where: str, words: str) -> None:
    with pytest.raises(ConfigError) as e:
        conf(text, "1 CRC32 x\n" if "unknown" in words else KEY_FILE)
    assert str(e.value).startswith(where + ": ") and words in str(e.value)


def test_without_a_loader_a_keys_line_is_an_error_not_ignored() -> None:
    with pytest.raises(ConfigError, match="cannot read a key file"):
        parse_config("keys /etc/ntp.keys\n", "t.conf")


def test_trusted_numbers_the_file_lacks_and_notrust_with_no_key_are_warned() -> None:
    c, _ = conf("keys /k\ntrustedkey 1 7\nrestrict default notrust\n")
    assert [str(w) for w in c.warnings] == [  # type: ignore[attr-defined]
        "/etc/ntp.conf:2: warning: trustedkey 7: the key file /k has no key 7"
    ]
    c, _ = conf("restrict default notrust\n")
    assert "notrust' with no trusted key" in str(c.warnings[0])  # type: ignore[attr-defined]


# -- the server -------------------------------------------------------------------------------------------------

HERE = Location("t.conf", 1)


def server(*flags: str, keys: KeyRing | None = None) -> NtpServer:
    rules = [RestrictRule(None, 4, frozenset(flags), HERE)] if flags else []
    state = local_clock_state(10, -20, NOW - 30 * NS_PER_S)
    return NtpServer(AccessTable.from_rules(rules), RateLimiter(Discard()), state=state, keys=keys or ring())


def answer(s: NtpServer, data: bytes, ip: str = "203.0.113.5") -> bytes | None:
    out = s.handle(data, ip, 40000, NOW)
    return None if out is None else finish_reply(out[0], out[1], NOW + 20_000)


@pytest.mark.parametrize("keyid", [1, 2, 3])
def test_a_signed_request_gets_a_reply_signed_with_its_key_as_long_as_the_request(keyid: int) -> None:
    r = ring()
    request = client_request(NOW)[0]
    request += r.keys[keyid].mac(request)
    s = server()
    reply = answer(s, request)
    assert reply is not None and len(reply) == len(request)
    assert r.check(reply[:48], reply[48:]) is r.keys[keyid]  # the MAC covers the transmit timestamp too
    p = NtpPacket.decode(reply)
    assert p.mode == MODE_SERVER and p.stratum == 10 and p.transmit == mark_transmit(ntp64_from_ns(NOW + 20_000))
    assert (s.counters.authenticated, s.counters.crypto_nak) == (1, 0)


@pytest.mark.parametrize("who", ["untrusted key", "bad digest", "unknown key", "wrong address"])
def test_any_other_mac_gets_a_crypto_nak_and_notrust_gets_nothing(who: str) -> None:
    r = ring()
    request = client_request(NOW)[0]
    mac = {
        "untrusted key": r.keys[9].mac(request),
        "bad digest": r.keys[1].mac(request)[:-1] + b"\0",
        "unknown key": struct.pack("!I", 77) + bytes(20),
        "wrong address": r.keys[4].mac(request),
    }[who]
    s = server()
    reply = answer(s, request + mac)
    assert reply is not None and reply[48:] == b"\0\0\0\0" and s.counters.crypto_nak == 1
    strict = server("notrust")
    assert answer(strict, request + mac) is None and strict.counters.dropped == {"notrust": 1}
    assert answer(strict, request) is None  # no MAC at all
    assert answer(strict, request + r.keys[4].mac(request), ip="192.168.0.9") is not None


def test_with_no_keys_every_mac_gets_a_crypto_nak() -> None:
    request = client_request(NOW)[0]
    reply = answer(server(keys=KeyRing()), request + ring().keys[1].mac(request))
    assert reply is not None and reply[48:] == b"\0\0\0\0"


# -- the upstream client ----------------------------------------------------------------------------------------


def association(keyid: int | None) -> Association:
    line = ServerLine("server", "192.0.2.1", HERE, key=keyid)
    return Association("192.0.2.1", NOW, ClientSettings.from_line(line, -20, ring()))


def reply_to(request: bytes, mac: bytes | None) -> bytes:
    p = NtpPacket.decode(request)
    head = NtpPacket(
        version=4, mode=MODE_SERVER, stratum=2, poll=6, precision=-20, refid=b"GPS\0",
        reference=ntp64_from_ns(NOW - NS_PER_S), origin=p.transmit, receive=ntp64_from_ns(NOW + 1000),
        transmit=ntp64_from_ns(NOW + 2000),
    ).encode()  # fmt: skip
    return head + (mac(head) if callable(mac) else mac or b"")


@pytest.mark.parametrize(
    ("signed_by", "outcome"),
    [(1, "sample"), (None, "unauthenticated"), (0, "crypto-nak"), (9, "bad-mac"), (-1, "bad-mac")],
)
def test_a_server_with_a_key_is_believed_only_when_its_reply_carries_that_keys_mac(
    signed_by: int | None, outcome: str
) -> None:
    a = association(1)
    request = a.request(NOW)
    a.sent(NOW)
    r = ring((1, 9))
    assert r.check(request[:48], request[48:]) is r.keys[1]  # the request is signed
    mac: object = {
        None: None,
        0: b"\0\0\0\0",
        1: r.keys[1].mac,
        9: r.keys[9].mac,
        -1: lambda head: r.keys[1].mac(head)[:-1] + b"\0",
    }[signed_by]
    got = a.receive(reply_to(request, mac), NOW + 3000)  # type: ignore[arg-type]
    assert (got.outcome if got.outcome == "sample" else got.reason) == outcome


def test_a_key_limited_to_other_addresses_authenticates_no_server_outside_them() -> None:
    line = ServerLine("server", "192.0.2.1", HERE, key=4)  # key 4: 192.168.0.0/24 and 10.0.0.5 only
    a = Association("192.0.2.1", NOW, ClientSettings.from_line(line, -20, ring()))
    request = a.request(NOW)
    a.sent(NOW)
    got = a.receive(reply_to(request, ring().keys[4].mac), NOW + 3000)
    assert (got.outcome, got.reason) == ("dropped", "key-address")
    inside = Association("10.0.0.5", NOW, ClientSettings.from_line(line, -20, ring()))
    request = inside.request(NOW)
    inside.sent(NOW)
    assert inside.receive(reply_to(request, ring().keys[4].mac), NOW + 3000).outcome == "sample"


def test_a_server_without_a_key_sends_plain_requests() -> None:
    a = association(None)
    request = a.request(NOW)
    assert len(request) == 48
    a.sent(NOW)
    assert a.receive(reply_to(request, None), NOW + 3000).outcome == "sample"


def test_status_and_metrics_count_signed_replies_and_crypto_naks() -> None:
    from dataclasses import replace

    from status_sample import SNAP

    from appliance.status import metrics
    from appliance.status.collect import counters_from
    from appliance.status.snapshot import Snapshot
    from appliance.status.text import status_text

    r = ring()
    s = server()
    request = client_request(NOW)[0]
    for _ in range(3):
        answer(s, request + r.keys[1].mac(request))
    answer(s, request + r.keys[9].mac(request))
    answer(s, request)
    counters = counters_from(s.counters)
    assert (counters.served, counters.authenticated, counters.crypto_nak) == (5, 3, 1)
    snap = replace(SNAP, counters=counters)
    assert Snapshot.from_json(snap.to_json()) == snap  # the status socket carries them
    assert "           3 signed with a key, 1 crypto-NAK (a key not trusted)\n" in status_text(snap)
    assert "signed with a key" not in status_text(replace(SNAP, counters=counters_from(server().counters)))
    (family,) = [f for f in metrics.families(snap) if f.name == "stratum1_authenticated_replies"]
    assert dict(family.samples) == {("signed",): 3.0, ("crypto_nak",): 1.0}


def test_a_key_file_every_user_may_read_is_warned(tmp_path: Path) -> None:
    keys = tmp_path / "ntp.keys"
    keys.write_text(KEY_FILE)
    conf_file = tmp_path / "ntp.conf"
    conf_file.write_text("keys ntp.keys\ntrustedkey 1\n")
    keys.chmod(0o644)
    (w,) = load_config(conf_file).warnings
    assert str(w) == (
        f"{conf_file}:1: warning: key file '{keys}' is readable by every user (mode 0644): its keys are secrets; "
        f"chown root:stratum1 '{keys}' && chmod 640 '{keys}'"
    )
    keys.chmod(0o640)
    assert load_config(conf_file).warnings == ()

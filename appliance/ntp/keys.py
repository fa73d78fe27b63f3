"""Symmetric-key authentication (RFC 5905 sections 7.3 and 9.2): ntpd's key file, and the MAC of a packet.

Pure: text in, keys out; octets in, digests out. The daemon reads the file (``keys PATH`` in ntp.conf)
and hands the text here; ``trustedkey`` says which of its keys may authenticate.

The key file is ntpd's and NTPsec's (``ntp.keys(5)``), one key a line::

    # keyno  type    key                                       [addresses]
    1        SHA1    8a6bd2fe0b8b1b7bb4b7d2f2f9a6b0e1c6c9b1a2
    2        MD5     a-short-secret
    3        SHA256  HEX:8a6bd2fe0b8b1b7bb4b7d2f2f9a6b0e1c6c9b1a2   192.168.0.0/24,10.0.0.5

- ``keyno``: 1 to 65535;
- ``type``: a digest, ``MD5`` (``M``), ``SHA1`` (``SHA``), ``SHA224``, ``SHA256``, ``SHA384``, ``SHA512``,
  ``RMD160`` where the system has it, in any case. Cipher-based MACs (``AES128CMAC``, RFC 8573) are not
  supported: the line is an error that says so;
- ``key``: up to 20 characters is the key as ASCII, longer is hexadecimal (NTPsec's rule); chrony's
  ``HEX:`` and ``ASCII:`` prefixes say which outright;
- ``addresses`` (ntpd 4.2.8's optional list): the key authenticates only packets from these addresses
  or networks (comma-separated, ``/bits`` allowed).

The MAC (RFC 5905 section 7.3) is the key number as 4 octets, then the digest of the key followed by the
packet before the MAC, cut to 20 octets as ntpd, NTPsec and chrony cut longer digests: an MD5 MAC is 20
octets, every other 24. A MAC of 4 zero octets is a crypto-NAK: "I cannot authenticate that".
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from appliance.ntp.access import address_value

#: Digests are cut to this many octets (ntpd's and chrony's NTPv4 limit: a MAC is at most 24 octets).
MAX_DIGEST = 20
MAX_KEYID = 65535
#: Up to this many characters, a key is ASCII; longer, hexadecimal (NTPsec).
MAX_ASCII_KEY = 20

#: Key types by the names key files use (upper case), and hashlib's name for each.
DIGESTS = {
    "M": "md5",
    "MD5": "md5",
    "SHA": "sha1",
    "SHA1": "sha1",
    "SHA224": "sha224",
    "SHA256": "sha256",
    "SHA384": "sha384",
    "SHA512": "sha512",
    "RMD160": "ripemd160",
    "RIPEMD160": "ripemd160",
}
#: Types that are ciphers (a CMAC), which this build cannot compute.
CIPHERS = frozenset({"AES128CMAC", "AES256CMAC", "AES-128", "AES-256", "AES128", "AES256", "CMAC"})

_KEYID = struct.Struct("!I")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class KeyFileError(ValueError):
    """A line of a key file that cannot be used: names the file and the line."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line
        self.message = message
        #: the file's later bad lines, when it has several (:func:`parse_keys` reports them all at once)
        self.others: tuple[KeyFileError, ...] = ()


@dataclass(frozen=True, slots=True)
class Key:
    """One key: its number, its type as the file names it (upper case), the secret, where it may come from."""

    keyid: int
    kind: str
    secret: bytes = field(repr=False)
    #: The addresses it authenticates packets from; empty: any.
    networks: tuple[Network, ...] = ()

    def digest(self, message: bytes) -> bytes:
        """The digest of the key followed by ``message``, cut to :data:`MAX_DIGEST` octets."""
        return hashlib.new(DIGESTS[self.kind], self.secret + message).digest()[:MAX_DIGEST]

    def mac(self, message: bytes) -> bytes:
        """The MAC to append to ``message``: the key number, then the digest."""
        return _KEYID.pack(self.keyid) + self.digest(message)

    def signed(self, message: bytes, mac: bytes) -> bool:
        """Whether ``mac`` is this key's MAC of ``message`` (number, length and digest; constant time)."""
        return hmac.compare_digest(mac, self.mac(message))

    def allows(self, ip: str) -> bool:
        """Whether the key authenticates packets from ``ip`` (as the socket writes it: scoped, IPv4-mapped)."""
        if not self.networks:
            return True
        try:
            family, value = address_value(ip)
        except ValueError:
            return False
        address = ipaddress.IPv4Address(value) if family == 4 else ipaddress.IPv6Address(value)
        return any(address in n for n in self.networks)


@dataclass(frozen=True, slots=True)
class KeyRing:
    """The keys read from the key file and the numbers ``trustedkey`` trusts; only trusted keys authenticate."""

    keys: Mapping[int, Key] = field(default_factory=lambda: MappingProxyType({}))
    trusted: frozenset[int] = frozenset()

    def trusted_key(self, keyid: int) -> Key | None:
        return self.keys.get(keyid) if keyid in self.trusted else None

    def check(self, message: bytes, mac: bytes, ip: str | None = None) -> Key | None:
        """The trusted key that made ``mac`` over ``message`` (from ``ip``, when given), or None.

        None for a crypto-NAK, an unknown or untrusted key number, a key not allowed from ``ip``, a MAC of
        the wrong length for its key's type, or a digest that does not match (compared in constant time).
        """
        if len(mac) <= _KEYID.size:
            return None
        key = self.trusted_key(_KEYID.unpack_from(mac)[0])
        if key is None or (ip is not None and not key.allows(ip)) or not key.signed(message, mac):
            return None
        return key


def parse_keys(text: str, path: str) -> dict[int, Key]:
    """The keys of a key file's ``text`` (``path`` names it in errors); raises :class:`KeyFileError` for the
    first bad line, with the others in its ``others``."""
    keys: dict[int, Key] = {}
    where: dict[int, int] = {}
    errors: list[KeyFileError] = []
    for number, raw in enumerate(text.split("\n"), start=1):  # LF ends a line, as editors number them
        try:
            _key_line(path, number, raw.rstrip("\r"), keys, where)
        except KeyFileError as e:
            errors.append(e)
    if errors:
        errors[0].others = tuple(errors[1:])
        raise errors[0]
    return keys


def _key_line(path: str, number: int, raw: str, keys: dict[int, Key], where: dict[int, int]) -> None:
    """One line of a key file into ``keys`` (``where``: each key's line), or its KeyFileError."""
    words = raw.split("#", 1)[0].split()
    if not words:
        return
    if len(words) < 3:
        raise KeyFileError(path, number, "a key line is 'keyno type key [addresses]'")
    if len(words) > 4:
        raise KeyFileError(path, number, f"unexpected {words[4]!r} after the addresses")
    keyid = _keyid(path, number, words[0])
    kind = words[1].upper()
    if kind in CIPHERS:
        raise KeyFileError(
            path, number, f"key {keyid}: type {words[1]} (a CMAC) is not supported; use SHA1 or another digest"
        )
    if kind not in DIGESTS or not _available(DIGESTS[kind]):
        known = ", ".join(k for k in DIGESTS if len(k) > 1 and _available(DIGESTS[k]))
        raise KeyFileError(path, number, f"key {keyid}: unknown type {words[1]!r} (known: {known})")
    secret = _secret(path, number, keyid, words[2])
    networks = _networks(path, number, keyid, words[3]) if len(words) == 4 else ()
    if keyid in keys:
        raise KeyFileError(path, number, f"key {keyid} again (first on line {where[keyid]})")
    keys[keyid] = Key(keyid, kind, secret, networks)
    where[keyid] = number


def parse_trusted(words: Iterable[str]) -> frozenset[int]:
    """``trustedkey``'s arguments: key numbers, and NTPsec's ranges ``(1 ... 5)``; raises ValueError."""
    text = " ".join(words).replace("(", " ( ").replace(")", " ) ")
    tokens = text.split()
    out: set[int] = set()
    i = 0
    while i < len(tokens):
        if tokens[i] == "(":
            if i + 4 >= len(tokens) or tokens[i + 2] != "..." or tokens[i + 4] != ")":
                raise ValueError("a range is '(first ... last)'")
            first, last = _number(tokens[i + 1]), _number(tokens[i + 3])
            if first > last:
                raise ValueError(f"range ({first} ... {last}) runs backwards")
            out.update(range(first, last + 1))
            i += 5
        else:
            out.add(_number(tokens[i]))
            i += 1
    return frozenset(out)


def _number(word: str) -> int:
    if not word.isdigit() or not 1 <= int(word) <= MAX_KEYID:
        raise ValueError(f"{word!r} is not a key number (1..{MAX_KEYID})")
    return int(word)


def _keyid(path: str, line: int, word: str) -> int:
    try:
        return _number(word)
    except ValueError as e:
        raise KeyFileError(path, line, str(e)) from None


def _available(name: str) -> bool:
    try:
        hashlib.new(name)
    except ValueError:
        return False
    return True


def _secret(path: str, line: int, keyid: int, word: str) -> bytes:
    upper = word[:6].upper()
    if upper.startswith("ASCII:"):
        secret = word[6:].encode("ascii", "replace")
    elif upper.startswith("HEX:"):
        secret = _hex(path, line, keyid, word[4:])
    elif len(word) <= MAX_ASCII_KEY:
        secret = word.encode("ascii", "replace")
    else:
        secret = _hex(path, line, keyid, word)
    if not secret:
        raise KeyFileError(path, line, f"key {keyid}: empty")
    return secret


def _hex(path: str, line: int, keyid: int, text: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise KeyFileError(
            path,
            line,
            f"key {keyid}: longer than {MAX_ASCII_KEY} characters, so hexadecimal, but it is not (an even number "
            "of 0-9 a-f; the key itself is not shown)",
        ) from None


def _networks(path: str, line: int, keyid: int, text: str) -> tuple[Network, ...]:
    out = []
    for item in text.split(","):
        try:
            out.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise KeyFileError(path, line, f"key {keyid}: {item!r} is not an address or network") from None
    return tuple(out)


def describe_keys(ring: KeyRing, path: str) -> str:
    """One line for the log: how many keys the file has, by type, and which are trusted (never a secret)."""
    kinds: dict[str, int] = {}
    for key in ring.keys.values():
        kinds[key.kind] = kinds.get(key.kind, 0) + 1
    types = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items())) or "none"
    usable = sorted(ring.trusted & ring.keys.keys())
    trusted = " ".join(str(k) for k in usable) or "none (no request can be authenticated)"
    return f"{len(ring.keys)} from {path} ({types}), trusted: {trusted}"

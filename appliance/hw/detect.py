"""Which board profile the HAT on the header is, from its ID EEPROM (pure).

A HAT with an ID EEPROM (the Raspberry Pi HAT specification) is read by the firmware at power-on,
which puts its vendor and product strings in the device tree: ``/proc/device-tree/hat/vendor`` and
``/proc/device-tree/hat/product`` (NUL-terminated). A profile's ``[hat] match`` words say which
strings name it: every word must appear, in any case, in "vendor product". The words are listed as
``hat.match`` among each profile's ``unverified`` keys until someone reads them off a real board.

A HAT without an EEPROM (or one the firmware did not read) has no ``hat`` node: then the profile
is chosen at build time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from appliance.refclock.profiles import Profile

HAT_DIR = "proc/device-tree/hat"


@dataclass(frozen=True, slots=True)
class HatId:
    """The strings of a HAT's ID EEPROM, as the firmware gives them (NULs stripped)."""

    vendor: str
    product: str


def hat_strings(raw_vendor: bytes | None, raw_product: bytes | None) -> HatId | None:
    """A :class:`HatId` from the raw ``vendor`` and ``product`` files, or None without a product."""
    if raw_product is None:
        return None

    def text(raw: bytes | None) -> str:
        return (raw or b"").split(b"\0", 1)[0].decode("utf-8", "replace").strip()

    return HatId(vendor=text(raw_vendor), product=text(raw_product))


def match_hat(hat: HatId, profiles: Mapping[str, Profile]) -> list[str]:
    """The names of the profiles whose ``hat_match`` words all appear in the HAT's strings, sorted."""
    haystack = f"{hat.vendor} {hat.product}".lower()
    return sorted(n for n, p in profiles.items() if p.hat_match and all(w in haystack for w in p.hat_match))

"""One group for each kind of device, in every file that names it: the udev rules `hw render` writes, the
package's rules, the units' groups, the package's postinst, `stratum1 unit-devices` and the docs.

udev applies every rules file in lexical order and the last GROUP= wins, so /etc/udev/rules.d/99-stratum1.rules
(what `hw apply` writes) overrides /usr/lib/udev/rules.d/99-stratum1-gps.rules: when they disagreed, the LCD
unit (groups i2c and gpio) could not open /dev/i2c-1.
"""

from __future__ import annotations

import re

import pytest
from support import ROOT

from appliance.hw import boot
from appliance.io import unitdevices
from appliance.refclock.profiles import builtin_profiles

SCHEME = boot.DEVICE_GROUPS
#: udev's SUBSYSTEM -> the kind of device.
SUBSYSTEMS = {"pps": "pps", "tty": "serial", "gpio": "gpio", "i2c-dev": "i2c"}
#: How the docs name each kind when they say whose group it is.
DOC_KINDS = {
    "pps": r"PPS devices?|/dev/pps[\w*]*|/dev/gpspps0",
    "serial": r"serial ports?|/dev/ttyAMA0|/dev/ttyACM\*|/dev/gps0",
    "gpio": r"GPIO chips?|/dev/gpiochip\*?",
    "i2c": r"I2C bus(?:es)?|/dev/i2c-[\w*]*",
}
GROUP_NAMES = "|".join(sorted({*SCHEME.values(), "root", "tty", "plugdev"}))
DOC_CLAIM = re.compile(
    "(?:"
    + "|".join(f"(?P<{kind}>{words})" for kind, words in DOC_KINDS.items())
    + rf")[^.;]{{0,40}}?(?:(?:group|to) `(?P<g1>{GROUP_NAMES})`|`(?P<g2>{GROUP_NAMES})` group)"
)
#: The operator's docs that say which group owns a device (docs/gps.md is not here yet: its 'the serial
#: port is the `stratum1` group's' in "Checking it" still needs to say `dialout`).
DOCS = (
    "README.md",
    "hw/README.md",
    "docs/install.md",
    "docs/security.md",
    "docs/display.md",
    "docs/status.md",
    "docs/gps.md",
)


def rule_groups(text: str) -> dict[str, set[str]]:
    """The GROUP= of every rule, by the kind of device its SUBSYSTEM names."""
    found: dict[str, set[str]] = {}
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            continue
        subsystem = re.search(r'SUBSYSTEM=="([^"]+)"', line)
        group = re.search(r'GROUP="([^"]+)"', line)
        if subsystem and group:
            found.setdefault(SUBSYSTEMS[subsystem.group(1)], set()).add(group.group(1))
    return found


def unit_setting(name: str, key: str) -> list[str]:
    text = (ROOT / "systemd" / name).read_text()
    return [w for line in text.splitlines() if line.startswith(f"{key}=") for w in line.split("=", 1)[1].split()]


def test_the_scheme_gives_the_service_group_nothing_but_pps() -> None:
    assert unit_setting("stratum1.service", "Group") == [SCHEME["pps"]]
    assert [kind for kind, group in SCHEME.items() if group == SCHEME["pps"]] == ["pps"]


def test_package_rules_follow_the_scheme() -> None:
    groups = rule_groups((ROOT / "hw" / "udev" / "99-stratum1-gps.rules").read_text())
    assert groups == {kind: {group} for kind, group in SCHEME.items()}


@pytest.mark.parametrize("kernel", boot.KERNELS)
@pytest.mark.parametrize("name", sorted(builtin_profiles()))
def test_rendered_rules_follow_the_scheme(name: str, kernel: boot.Kernel) -> None:
    groups = rule_groups(boot.udev_rules(builtin_profiles()[name], kernel))
    assert groups == {kind: {group} for kind, group in SCHEME.items()}


def test_unit_devices_asks_for_the_schemes_groups() -> None:
    service_group = unit_setting("stratum1.service", "Group")[0]
    assert {kind: group or service_group for kind, group in unitdevices._GROUPS.items()} == SCHEME


def test_lcd_unit_has_the_groups_of_i2c_and_gpio_alone() -> None:
    assert sorted(unit_setting("stratum1-lcd.service", "SupplementaryGroups")) == sorted(
        [SCHEME["i2c"], SCHEME["gpio"]]
    )


def postinst_loops() -> list[tuple[list[str], str]]:
    """Each ``for g in WORDS; do BODY done`` of debian/postinst: its words and its body."""
    text = (ROOT / "debian" / "postinst").read_text()
    return [(m.group(1).split(), m.group(2)) for m in re.finditer(r"for g in ([^;]+); do(.*?)done", text, re.S)]


def test_postinst_makes_the_lcd_groups_and_gives_the_service_no_i2c() -> None:
    made = [g for words, body in postinst_loops() if "addgroup" in body for g in words]
    joined = [g for words, body in postinst_loops() if "adduser" in body for g in words]
    assert {SCHEME["gpio"], SCHEME["i2c"]} <= set(made)
    assert set(joined) == {SCHEME["serial"], SCHEME["gpio"]}


@pytest.mark.parametrize("doc", DOCS)
def test_docs_name_the_schemes_groups(doc: str) -> None:
    text = " ".join((ROOT / doc).read_text().split())
    claims = []
    for m in DOC_CLAIM.finditer(text):
        kind = next(k for k in DOC_KINDS if m.group(k))
        claims.append((kind, m.group("g1") or m.group("g2"), m.group(0)))
    wrong = [(claim, f"expected {SCHEME[kind]}") for kind, group, claim in claims if group != SCHEME[kind]]
    assert not wrong
    if doc in ("docs/security.md", "hw/README.md", "docs/install.md"):
        assert {kind for kind, _, _ in claims} == set(SCHEME)


def test_display_doc_quotes_the_lcd_units_groups() -> None:
    groups = " ".join(unit_setting("stratum1-lcd.service", "SupplementaryGroups"))
    assert (
        f"`DynamicUser=yes`, `User=stratum1-lcd`, `SupplementaryGroups={groups}`"
        in (ROOT / "docs" / "display.md").read_text()
    )

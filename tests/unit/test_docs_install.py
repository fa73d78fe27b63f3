"""docs/install.md stays true: its command output, its links and its figures are the code's."""

from __future__ import annotations

import io
import re
from contextlib import redirect_stdout
from pathlib import Path
from types import SimpleNamespace

from appliance.config import default_config_text
from appliance.daemon import BUILD_DATE_NS
from appliance.fakes.board import FakeBoard
from appliance.hw import boot, doctor
from appliance.hw.command import cmd_list
from appliance.refclock.profiles import builtin_profiles

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "install.md").read_text(encoding="utf-8")
FLAT = " ".join(PAGE.split())
#: Files of the image part of issue 12, built beside this page on another branch.
IMAGE_PART = {"../image/README.md"}


def _block_after(marker: str) -> str:
    start = PAGE.index(marker)
    m = re.compile(r"```\n(.*?)```", re.S).search(PAGE, start)
    assert m is not None
    return m.group(1)


def test_the_doctor_output_is_the_doctors() -> None:
    profiles = builtin_profiles()
    board = FakeBoard.working(profiles["uputronics-gps-hat"])
    board.add_console("console=serial0,115200")
    board.fix = False
    plan = doctor.plan_from(board, profiles, None, None)
    assert _block_after("A board with a login console") == doctor.format_text(
        doctor.examine(board, plan, BUILD_DATE_NS)
    )


def test_the_profile_list_is_the_commands() -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        cmd_list(SimpleNamespace())
    block = _block_after("A GPS board with a profile")
    listed = [line.strip() for line in block.splitlines()[1:] if line.strip()]
    assert listed == out.getvalue().splitlines()


def test_links_lead_somewhere() -> None:
    missing = set()
    for target in re.findall(r"\]\(([^)#]+?)(?:#[^)]*)?\)", PAGE):
        if target.startswith("http"):
            continue
        if not (ROOT / "docs" / target).resolve().exists():
            missing.add(target)
    assert missing <= IMAGE_PART


def test_the_lan_is_the_rendered_configs() -> None:
    import ipaddress

    said = "10/8, 172.16/12, 192.168/16, fc00::/7, fe80::/10"
    assert said in FLAT
    nets = [ipaddress.ip_network(f"{n}/{bin(int(ipaddress.ip_address(m))).count('1')}") for n, m in boot.LAN_NETWORKS]
    assert [str(n) for n in nets] == ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7", "fe80::/10"]


def test_the_pools_access_line_is_the_defaults() -> None:
    line = "restrict default kod limited nomodify notrap nopeer noquery"
    assert f"`{line}`" in FLAT
    assert line in default_config_text()
    assert (
        "discard average 3 minimum 2 burst 8" in default_config_text() and "discard average 3 minimum 2 burst 8" in FLAT
    )

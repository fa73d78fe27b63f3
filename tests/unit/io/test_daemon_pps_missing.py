"""A PPS device that is not there (no overlay, no libgpiod, wrong pin): logged, and the GPS serves from NMEA alone."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from appliance.config import parse_config
from appliance.daemon import Appliance, ServeSettings
from appliance.fakes.gps import PtyWriter


@pytest.mark.filterwarnings("ignore:Falling back")
@pytest.mark.parametrize("ppspath", ["{tmp}/pps-missing", "gpio:4"])
def test_missing_pps_is_logged_not_raised(ppspath: str, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    pty = PtyWriter(None, lambda: 0, link=tmp_path / "gps0")
    pps = ppspath.format(tmp=tmp_path)
    config = parse_config(
        f"refclock nmea unit 0 path {pty.path} baud 9600 ppspath {pps} time2 0.5\n"
        f"restrict default nomodify notrap nopeer noquery\n",
        "t.conf",
    )
    try:
        app = Appliance(config, ServeSettings(listen=("127.0.0.1",), port=0))
        try:
            assert app.addresses  # it serves
            messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
            assert any(f"PPS {pps} unusable, serving without it" in m for m in messages), messages
        finally:
            app.close()
    finally:
        pty.close()

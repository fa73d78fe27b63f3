"""Every exit path removes what the daemon made in the temporary directory, start-up failures included."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from appliance.config import parse_config
from appliance.daemon import Appliance, ServeSettings, Simulation
from appliance.io.serial import SerialGps


@pytest.fixture
def tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_a_failure_late_in_start_up_removes_the_simulation_directories(
    tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[str] = []

    def fail(self: SerialGps) -> None:
        made.extend(sorted(p.name.rsplit("-", 1)[0] for p in tmp.iterdir()))
        raise OSError(5, "the serial driver failed")

    monkeypatch.setattr(SerialGps, "start", fail)
    config = parse_config("driftfile /var/lib/stratum1/drift\n", "t.conf")
    with pytest.raises(OSError, match="the serial driver failed"):
        Appliance(config, ServeSettings(listen=("127.0.0.1",), port=0), simulation=Simulation())
    assert made == ["stratum1-sim", "stratum1-sim-drift"]  # both existed when start-up failed...
    assert list(tmp.iterdir()) == []  # ...and are gone


def test_a_normal_close_removes_them(tmp: Path) -> None:
    config = parse_config("driftfile /var/lib/stratum1/drift\n", "t.conf")
    app = Appliance(config, ServeSettings(listen=("127.0.0.1",), port=0), simulation=Simulation())
    assert len(list(tmp.iterdir())) == 2
    app.close()
    assert list(tmp.iterdir()) == []
    app.close()  # a second close (an error path after a close) is harmless

"""``stratum1 plot``: loopstats files in, an SVG that parses and draws every point out."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from appliance import plotcli
from appliance.status.plot import svg
from appliance.status.statsfiles import LoopPoint, mjd_seconds
from appliance.timebase import NS_PER_S

DAY0 = 1_795_392_000  # 2026-11-23 00:00 UTC


def write_loopstats(d: Path, start: int, n: int) -> None:
    for i in range(n):
        t = start + 16 * i
        mjd, secs = mjd_seconds(t * NS_PER_S)
        day = Path(d) / f"loopstats.{'20261123' if t < DAY0 + 86400 else '20261124'}"
        with day.open("a") as f:
            f.write(f"{mjd} {secs:.3f} {1e-6 * (i % 7 - 3):.9f} {0.44 + i * 1e-4:.6f} {2e-6:.9f} 0.001 4\n")


def test_svg_is_well_formed_with_one_line_per_series() -> None:
    points = [LoopPoint(DAY0 + i, (i % 5) * 1e-6, 0.4, 1e-6) for i in range(50)]
    root = ET.fromstring(svg(points, "t"))
    lines = root.findall("{http://www.w3.org/2000/svg}polyline")
    assert len(lines) == 3
    assert all(len(line.get("points", "").split()) == 50 for line in lines)


def test_plot_reads_the_span_across_daily_files(tmp_path: Path) -> None:
    write_loopstats(tmp_path, DAY0 + 86400 - 800, 100)  # crosses midnight: two files
    out = tmp_path / "p.svg"
    code = plotcli.main(["--statsdir", str(tmp_path), "--span", "1h", "--end", str(DAY0 + 86400 + 800), "-o", str(out)])
    assert code == 0
    (line, *_) = ET.parse(out).getroot().findall("{http://www.w3.org/2000/svg}polyline")
    assert len(line.get("points", "").split()) == 100
    assert len(plotcli.load(str(tmp_path), DAY0 + 86400, DAY0 + 86400 + 800)) == 50


def test_plot_without_data_or_with_a_bad_span(tmp_path: Path) -> None:
    assert plotcli.main(["--statsdir", str(tmp_path), "-o", str(tmp_path / "x.svg")]) == 1
    with pytest.raises(SystemExit):
        plotcli.main(["--statsdir", str(tmp_path), "--span", "1 week", "-o", "x.svg"])

"""Files an operator names: regular files of bounded size, everything else refused in one line.

``/dev/zero`` stands for an endless file, ``/dev/null`` for a device that
reads as empty, ``os.mkfifo`` for a FIFO that would block ``open`` for ever.
Each case asserts the refusal itself; none of them may hang or read
without bound (the suite would then time out or run out of memory).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from appliance.clock.drift import read_drift_file
from appliance.config import ConfigError, load_config
from appliance.config.parser import MAX_CONFIG_BYTES
from appliance.files import FileRefused, read_regular_file
from appliance.leap import LeapFileError, load_leapfile


def test_reads_a_regular_file_up_to_its_cap(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"x" * 10)
    assert read_regular_file(f, 10) == b"x" * 10
    with pytest.raises(FileRefused, match="larger than 9 bytes"):
        read_regular_file(f, 9)


@pytest.mark.parametrize(("path", "kind"), [("/dev/zero", "a character device"), ("/dev/null", "a character device")])
def test_devices_are_refused(path: str, kind: str) -> None:
    with pytest.raises(FileRefused) as caught:
        read_regular_file(path, 1 << 20)
    assert caught.value.strerror == f"not a regular file ({kind})" and caught.value.filename == path


def test_directory_and_fifo_are_refused_without_blocking(tmp_path: Path) -> None:
    with pytest.raises(FileRefused, match=r"not a regular file \(a directory\)"):
        read_regular_file(tmp_path, 100)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)  # no writer: a blocking open would wait for ever
    with pytest.raises(FileRefused, match=r"not a regular file \(a FIFO\)"):
        read_regular_file(fifo, 100)


def test_missing_file_is_the_usual_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_regular_file(tmp_path / "nope", 100)


# -- the configuration -------------------------------------------------------------


def test_config_dev_zero_is_refused() -> None:
    e = pytest.raises(ConfigError, load_config, "/dev/zero").value
    assert str(e) == "/dev/zero: cannot read: not a regular file (a character device)"


def test_includefile_dev_zero_is_refused_naming_the_line(tmp_path: Path) -> None:
    main = tmp_path / "ntp.conf"
    main.write_text("restrict default noquery\nincludefile /dev/zero\n")
    e = pytest.raises(ConfigError, load_config, main).value
    assert str(e) == f"{main}:2: cannot read include file '/dev/zero': not a regular file (a character device)"


def test_config_over_the_cap_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.conf"
    big.write_bytes(b"#" * (MAX_CONFIG_BYTES + 1))
    e = pytest.raises(ConfigError, load_config, big).value
    assert str(e) == f"{big}: cannot read: larger than {MAX_CONFIG_BYTES} bytes ({MAX_CONFIG_BYTES + 1})"


def test_includes_share_one_budget(tmp_path: Path) -> None:
    """The same 600 kB file included twice is not a loop, but together the files exceed the cap."""
    part = tmp_path / "part.conf"
    part.write_bytes(b"#" * (600 * 1024) + b"\n")
    main = tmp_path / "ntp.conf"
    main.write_text("includefile part.conf\nincludefile part.conf\n")
    e = pytest.raises(ConfigError, load_config, main).value
    assert str(e) == (
        f"{main}:2: cannot read include file '{part}': "
        f"the configuration and its includes exceed {MAX_CONFIG_BYTES} bytes"
    )


# -- the leap-second file and the drift file -----------------------------------------


def test_leapfile_dev_zero_is_refused() -> None:
    e = pytest.raises(LeapFileError, load_leapfile, "/dev/zero").value
    assert str(e) == "/dev/zero: not a regular file (a character device): not a leap-seconds.list"


def test_driftfile_device_is_ignored_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        assert read_drift_file(Path("/dev/zero")) is None
    assert [r.getMessage() for r in caplog.records] == [
        "drift file /dev/zero unreadable, starting without it: not a regular file (a character device)"
    ]


def test_a_drift_file_that_is_not_a_regular_file_is_never_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """``driftfile /dev/null`` run as root would otherwise turn /dev/null into a regular file at the first save.

    A FIFO in ``tmp_path`` stands in for the device, so a regression replaces nothing of the host's.
    """
    from appliance.clock.drift import DriftFile, write_drift_file

    fifo = tmp_path / "drift"
    os.mkfifo(fifo)
    with pytest.raises(FileRefused, match=r"not a regular file \(a FIFO\), not replaced"):
        write_drift_file(fifo, 1_000.0)
    assert fifo.is_fifo() and [p.name for p in tmp_path.iterdir()] == ["drift"]  # no temporary left either
    directory = tmp_path / "dir"
    directory.mkdir()
    with caplog.at_level(logging.WARNING):
        assert DriftFile(directory).save(0, 1_000.0) is False  # a directory: refused, a warning
    assert caplog.records[0].getMessage().startswith(f"drift file {directory} not written")
    assert list(directory.iterdir()) == []

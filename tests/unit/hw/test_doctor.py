"""stratum1 doctor: every link of the chain, working and broken, on the fake board; the advice it prints."""

from __future__ import annotations

import json

import pytest

from appliance.daemon import BUILD_DATE_NS
from appliance.fakes.board import FakeBoard
from appliance.hw import doctor
from appliance.hw.doctor import Finding, Status
from appliance.refclock.profiles import builtin_profiles
from appliance.timebase import NS_PER_S

PROFILES = builtin_profiles()
ADA = PROFILES["adafruit-ultimate-gps-hat"]
USB = PROFILES["usb-receiver"]


def examine(board: FakeBoard) -> dict[str, Finding]:
    plan = doctor.plan_from(board, PROFILES, None, None)
    return {f.link: f for f in doctor.examine(board, plan, BUILD_DATE_NS)}


def one(board: FakeBoard, link: str) -> Finding:
    return examine(board)[link]


def printed(board: FakeBoard) -> str:
    plan = doctor.plan_from(board, PROFILES, None, None)
    return doctor.format_text(doctor.examine(board, plan, BUILD_DATE_NS))


def ada(kernel: str = "upstream") -> FakeBoard:
    return FakeBoard.working(ADA, "upstream" if kernel == "upstream" else "raspios")


@pytest.mark.parametrize("kernel", ["upstream", "raspios"])
@pytest.mark.parametrize("name", sorted(PROFILES))
def test_a_working_board_passes_every_link(name: str, kernel: str) -> None:
    board = FakeBoard.working(PROFILES[name], "upstream" if kernel == "upstream" else "raspios")
    found = examine(board)
    assert [f.link for f in found.values() if f.status is not Status.OK] == []
    assert list(found) == [
        "profile",
        "config.txt",
        "GPS serial port",
        "serial console",
        "Bluetooth off the UART",
        "pps-gpio overlay",
        "PPS device",
        "PPS pulses",
        "NMEA",
        "pulse and second",
        "I2C display",
        "leftovers",
    ]
    pps = "/sys/class/pps/pps0/assert" if PROFILES[name].pps_gpio is not None else None
    assert board.captures == [("/dev/gps0", PROFILES[name].baud, pps, doctor.CAPTURE_S)]
    assert printed(board).endswith("every link works\n")


def test_working_details() -> None:
    found = examine(ada())
    assert found["GPS serial port"].detail == "/dev/gps0 -> /dev/ttyAMA0"
    assert found["pps-gpio overlay"].detail == "/proc/device-tree/pps-gpio4 watches GPIO 4"
    assert found["PPS device"].detail == "/dev/pps0 (pps-gpio4.-1), /dev/gpspps0 -> /dev/pps0"
    assert found["PPS pulses"].detail == "3 pulses in 3 s, 1.000000, 1.000000 s apart"
    assert "at 9600 baud; 2 epochs, 2 with a fix (3D fix, 9 satellites)" in found["NMEA"].detail  # the GSA count
    assert found["pulse and second"].detail.startswith("each burst follows its pulse by 0.5")
    assert found["I2C display"].detail == "an LCD answers at 0x27 on /dev/i2c-1"


# -- profile --------------------------------------------------------------------------------


def test_no_profile_json_asks_for_one() -> None:
    board = ada()
    board.remove("/etc/stratum1/profile.json")
    with pytest.raises(ValueError, match=r"no /etc/stratum1/profile.json: name the board with --profile \(adafruit"):
        doctor.plan_from(board, PROFILES, None, None)
    plan = doctor.plan_from(board, PROFILES, "adafruit-ultimate-gps-hat", "upstream")
    assert plan.source == "--profile" and plan.kernel == "upstream"


def test_a_broken_profile_json() -> None:
    board = ada()
    board.files["/etc/stratum1/profile.json"] = b'{"name": "nope"}'
    with pytest.raises(ValueError, match="no profile 'nope'"):
        doctor.plan_from(board, PROFILES, None, None)
    board.files["/etc/stratum1/profile.json"] = b"{"
    with pytest.raises(ValueError, match="/etc/stratum1/profile.json: "):
        doctor.plan_from(board, PROFILES, None, None)


# -- config.txt ------------------------------------------------------------------------------


def test_config_txt_missing_a_line() -> None:
    board = ada()
    board.set_config_txt(board.config_txt().replace("dtoverlay=stratum1-pps-gpio4\n", ""))
    f = one(board, "config.txt")
    assert f.status is Status.FAIL
    assert f.detail == "/boot/firmware/config.txt lacks dtoverlay=stratum1-pps-gpio4"
    assert f.fix == "printf 'dtoverlay=stratum1-pps-gpio4\\n' | sudo tee -a /boot/firmware/config.txt && sudo reboot"


def test_config_txt_naming_an_overlay_the_boot_partition_lacks() -> None:
    board = ada()
    board.remove("/boot/firmware/overlays/stratum1-uart0.dtbo")
    f = one(board, "config.txt")
    assert f.status is Status.FAIL
    assert "lacks, so the firmware skips them: stratum1-uart0" in f.detail
    assert "sudo dtc -@ -q -I dts -O dtb -o /boot/firmware/overlays/$o.dtbo /tmp/hw/overlays/$o.dts" in f.fix
    assert f.fix.startswith("python3 -m appliance.hw render --profile adafruit-ultimate-gps-hat --out /tmp/hw")


def test_config_lines_that_the_next_kernel_update_would_drop() -> None:
    board = ada()
    board.remove("/etc/default/raspi-firmware-custom")
    f = one(board, "config.txt")
    assert f.status is Status.FAIL
    assert "/etc/default/raspi-firmware-custom lacks enable_uart=1, dtoverlay=stratum1-uart0" in f.detail
    assert "Debian's raspi-firmware rewrites config.txt from it at the next kernel update" in f.detail
    assert f.fix.startswith("printf 'enable_uart=1\\ndtoverlay=stratum1-uart0\\n")
    assert f.fix.endswith("| sudo tee -a /etc/default/raspi-firmware-custom")
    raspios = ada("raspios")
    raspios.remove("/etc/default/raspi-firmware-custom")
    assert one(raspios, "config.txt").status is Status.OK  # Raspberry Pi OS does not regenerate config.txt


def test_config_txt_commented_out_counts_as_missing() -> None:
    board = ada()
    board.set_config_txt(board.config_txt().replace("enable_uart=1", "#enable_uart=1"))
    f = one(board, "config.txt")
    assert f.status is Status.FAIL and "lacks enable_uart=1" in f.detail


def test_no_config_txt_is_unknown() -> None:
    board = ada()
    board.remove("/boot/firmware/config.txt")
    f = one(board, "config.txt")
    assert f.status is Status.UNKNOWN and "no /boot/firmware/config.txt" in f.detail


# -- the serial port -------------------------------------------------------------------------


def test_uart_not_enabled() -> None:
    board = ada()
    board.remove("/sys/class/tty/ttyAMA0")
    board.remove("/dev/ttyAMA0")
    board.remove("/dev/gps0")
    found = examine(board)
    assert found["config.txt"].status is Status.OK
    f = found["GPS serial port"]
    assert f.status is Status.FAIL and f.detail.startswith("no /dev/ttyAMA0, though config.txt has the lines: not")
    assert f.fix == "sudo reboot"  # the lines are there: appending them again would duplicate them
    assert found["NMEA"].status is Status.UNKNOWN


def test_uart_not_enabled_and_config_txt_lacks_the_lines() -> None:
    board = ada()
    board.remove("/sys/class/tty/ttyAMA0")
    board.set_config_txt(board.config_txt().replace("enable_uart=1", "#enable_uart=1"))
    found = examine(board)
    assert found["config.txt"].fix.startswith("printf 'enable_uart=1\\n' | sudo tee -a /boot/firmware/config.txt")
    f = found["GPS serial port"]
    assert f.status is Status.FAIL and f.fix == ""
    assert f.detail == "no /dev/ttyAMA0: the PL011 UART is not enabled (config.txt: the fix above)"


def test_uart_missing_on_a_board_without_config_txt_is_unknown() -> None:
    board = ada()
    board.remove("/sys/class/tty/ttyAMA0")
    board.remove("/boot/firmware/config.txt")
    f = one(board, "GPS serial port")
    assert f.status is Status.UNKNOWN and f.fix == ""
    assert f.detail == "no /dev/ttyAMA0, and config.txt could not be read (above)"


def test_udev_rules_missing() -> None:
    board = ada()
    board.remove("/dev/gps0")
    f = one(board, "GPS serial port")
    assert f.status is Status.FAIL
    assert f.detail == "/dev/ttyAMA0 is there but /dev/gps0 is not: the appliance's udev rules are not installed"
    assert "sudo cp /tmp/hw/udev/99-stratum1.rules /etc/udev/rules.d/" in f.fix
    assert "sudo udevadm trigger" in f.fix


def test_usb_receiver_unplugged() -> None:
    board = FakeBoard.working(USB)
    board.remove("/dev/gps0")
    board.remove("/dev/ttyACM0")
    f = one(board, "GPS serial port")
    assert f.status is Status.FAIL and "the USB receiver is not plugged in" in f.detail
    assert f.fix == "ls -l /dev/ttyACM* /dev/ttyUSB*"


# -- the serial console ----------------------------------------------------------------------


@pytest.mark.parametrize("word", ["console=serial0,115200", "console=ttyAMA0,115200", "console=ttyAMA0"])
def test_console_on_the_gps_uart(word: str) -> None:
    board = ada("raspios")
    board.add_console(word)
    f = one(board, "serial console")
    assert f.status is Status.FAIL
    assert f.detail == f"a login console on the GPS UART: {word} in /boot/firmware/cmdline.txt"
    assert f.fix == f"sudo sed -i 's/ *{word}//' /boot/firmware/cmdline.txt && sudo reboot"


def test_console_only_in_the_running_kernel() -> None:
    board = ada()
    board.files["/proc/cmdline"] = b"console=ttyAMA0,115200 " + board.files["/proc/cmdline"]
    f = one(board, "serial console")
    assert f.status is Status.FAIL
    assert "console=ttyAMA0,115200 in the running kernel's command line (/proc/cmdline)" in f.detail


def test_console_in_debians_raspi_firmware_settings() -> None:
    board = ada()
    board.files["/etc/default/raspi-firmware"] = (
        b'# comment\nCONSOLES="ttyAMA0,115200 tty0"\nROOTPART=LABEL=RASPIROOT\n'
    )
    board.files["/etc/default/raspi-extra-cmdline"] = b"console=serial0,115200 quiet\n"
    f = one(board, "serial console")
    assert f.status is Status.FAIL
    assert 'CONSOLES="ttyAMA0,115200 tty0" in /etc/default/raspi-firmware (raspi-firmware writes it' in f.detail
    assert "console=serial0,115200 in /etc/default/raspi-extra-cmdline (raspi-firmware puts it back" in f.detail
    assert f.fix == (
        "sudo sed -i 's/ *console=serial0,115200//' /etc/default/raspi-extra-cmdline && "
        "sudo sed -i 's/^CONSOLES=.*/CONSOLES=\"tty0\"/' /etc/default/raspi-firmware && sudo reboot"
    )
    board.files["/etc/default/raspi-firmware"] = b'CONSOLES="tty0"\n#CONSOLES="ttyAMA0,115200"\n'
    board.files["/etc/default/raspi-extra-cmdline"] = b"quiet\n"
    assert one(board, "serial console").status is Status.OK


def test_serial_getty_enabled_and_running() -> None:
    board = ada()
    board.enable_getty()
    f = one(board, "serial console")
    assert f.status is Status.FAIL
    assert f.detail == (
        "a login console on the GPS UART: serial-getty@ttyAMA0.service enabled; serial-getty@ttyAMA0.service running"
    )
    assert f.fix == "sudo systemctl disable --now serial-getty@ttyAMA0.service"


def test_other_consoles_are_left_alone() -> None:
    board = ada()
    board.add_console("console=tty1")
    board.add_console("console=ttyS1,115200")
    assert one(board, "serial console").status is Status.OK


# -- Bluetooth -------------------------------------------------------------------------------


def test_bluetooth_still_on_the_pl011_upstream() -> None:
    board = ada()
    board.bluetooth_on_uart()
    f = one(board, "Bluetooth off the UART")
    assert f.status is Status.FAIL
    assert f.detail.startswith("the PL011 (uart0) is on GPIO 32/33 (Bluetooth's)")
    assert f.fix == "echo 'dtoverlay=stratum1-uart0' | sudo tee -a /boot/firmware/config.txt && sudo reboot"


def test_bluetooth_still_on_the_pl011_raspios() -> None:
    board = ada("raspios")
    board.bluetooth_on_uart()
    f = one(board, "Bluetooth off the UART")
    assert f.status is Status.FAIL
    assert f.fix == (
        "echo 'dtoverlay=disable-bt' | sudo tee -a /boot/firmware/config.txt && sudo systemctl disable hciuart "
        "&& sudo reboot"
    )


def test_bluetooth_without_a_device_tree_is_unknown() -> None:
    board = ada()
    board.remove("/proc/device-tree/__symbols__")
    f = one(board, "Bluetooth off the UART")
    assert f.status is Status.UNKNOWN and "could not read the device tree" in f.detail


# -- pps-gpio --------------------------------------------------------------------------------


def test_pps_gpio_on_the_wrong_pin() -> None:
    board = ada()
    board.move_pps(18)
    f = one(board, "pps-gpio overlay")
    assert f.status is Status.FAIL
    assert f.detail == "pps-gpio watches GPIO 18, but the Adafruit Ultimate GPS HAT's PPS is on GPIO 4"
    assert "replace the pps-gpio line with: dtoverlay=stratum1-pps-gpio4" in f.fix


def test_pps_gpio_not_loaded() -> None:
    board = ada("raspios")
    board.move_pps(None)
    found = examine(board)
    f = found["pps-gpio overlay"]
    assert f.status is Status.FAIL and "no pps-gpio node in the device tree" in f.detail
    assert f.fix == "echo 'dtoverlay=pps-gpio,gpiopin=4' | sudo tee -a /boot/firmware/config.txt && sudo reboot"
    assert found["PPS device"].status is Status.UNKNOWN


def test_pps_driver_not_bound() -> None:
    board = ada()
    board.remove("/sys/class/pps")
    f = one(board, "PPS device")
    assert f.status is Status.FAIL
    assert f.detail.startswith("no PPS source pps-gpio4.-1 in /sys/class/pps (there: none)")
    assert f.fix.startswith("sudo modprobe pps-gpio") and "'ppspath gpio:4'" in f.fix


def test_pps_link_missing() -> None:
    board = ada()
    board.remove("/dev/gpspps0")
    f = one(board, "PPS device")
    assert f.status is Status.FAIL
    assert "no /dev/gpspps0: the appliance's udev rules are not installed" in f.detail
    assert "99-stratum1.rules" in f.fix


# -- pulses ----------------------------------------------------------------------------------


def test_no_pulses() -> None:
    board = ada()
    board.pulses = False
    f = one(board, "PPS pulses")
    assert f.status is Status.FAIL
    assert f.detail.startswith("no pulse in 3 s: the receiver sends PPS only with a fix")
    assert f.fix == "sudo ppstest /dev/pps0"


def test_edges_that_are_not_a_pps() -> None:
    board = ada()
    board.pulse_period_ns = 300_000_000
    f = one(board, "PPS pulses")
    assert f.status is Status.FAIL
    assert "0.300 s apart: not a pulse per second" in f.detail


def test_pulses_unreadable() -> None:
    board = ada()
    board.deny("/sys/class/pps/pps0/assert")
    f = one(board, "PPS pulses")
    assert f.status is Status.UNKNOWN and "Permission denied" in f.detail


def test_parse_assert() -> None:
    assert doctor.parse_assert("1711195200.000004211#1234\n") == (1_711_195_200_000_004_211, 1234)
    assert doctor.parse_assert("0.000000000#0") is None
    assert doctor.parse_assert("garbage") is None


# -- NMEA ------------------------------------------------------------------------------------


def test_nmea_silent() -> None:
    board = ada()
    board.silent = True
    f = one(board, "NMEA")
    assert f.status is Status.FAIL and f.detail.startswith("nothing on /dev/gps0 in 3 s")
    assert f.fix == "stty -F /dev/gps0 9600 raw -echo && timeout 5 cat /dev/gps0"


def test_nmea_at_the_wrong_rate() -> None:
    board = ada()
    board.garbled = True
    f = one(board, "NMEA")
    assert f.status is Status.FAIL
    assert "none of them a sentence: the wrong baud rate" in f.detail
    assert f.fix.startswith("for b in 4800 9600 38400 115200")


def test_nmea_without_a_fix() -> None:
    board = ada()
    board.fix = False
    found = examine(board)
    assert found["NMEA"].status is Status.FAIL
    assert "no fix: the receiver does not see enough satellites" in found["NMEA"].detail
    assert found["NMEA"].fix.startswith("put the antenna where it sees the sky")
    assert found["PPS pulses"].status is Status.FAIL  # the receiver squelches PPS without a fix


def test_nmea_port_held_by_the_daemon() -> None:
    board = ada()
    board.busy = True
    found = examine(board)
    f = found["NMEA"]
    assert f.status is Status.UNKNOWN and "held by another program" in f.detail
    assert f.fix == "sudo systemctl stop stratum1 && sudo stratum1 doctor; sudo systemctl start stratum1"
    assert found["PPS pulses"].status is Status.OK  # sysfs is read beside the daemon


def test_nmea_port_not_permitted() -> None:
    board = ada()
    board.deny("/dev/ttyAMA0")
    f = one(board, "NMEA")
    assert f.status is Status.UNKNOWN and f.detail == "could not read /dev/gps0: Permission denied"
    assert f.fix == "sudo stratum1 doctor"


# -- pulse and second ------------------------------------------------------------------------


def test_pulses_and_seconds_agree_with_the_clock_off() -> None:
    board = ada()
    board.clock_offset_ns = 250_000_000
    f = one(board, "pulse and second")
    assert f.status is Status.OK and "the clock reads +0.250000 s at the pulses" in f.detail


def test_clock_a_second_off_is_said() -> None:
    board = ada()
    board.clock_offset_ns = -NS_PER_S
    f = one(board, "pulse and second")
    assert f.status is Status.OK
    assert "-1.000000 s at the pulses (not set yet, or a receiver that names the next second" in f.detail


def test_a_receiver_whose_seconds_jump() -> None:
    board = ada()
    board.jump_weeks_midway = True
    f = one(board, "pulse and second")
    assert f.status is Status.FAIL and "not one receiver's pulse and sentences" in f.detail


# -- I2C -------------------------------------------------------------------------------------


def test_lcd_at_the_other_address() -> None:
    board = ada()
    board.lcd_addresses = {0x3F}
    assert one(board, "I2C display").detail == "an LCD answers at 0x3F on /dev/i2c-1"


def test_no_lcd() -> None:
    board = ada()
    board.lcd_addresses = set()
    f = one(board, "I2C display")
    assert f.status is Status.FAIL and f.detail.startswith("nothing answers at 0x27 or 0x3F on /dev/i2c-1")
    assert f.fix == "sudo i2cdetect -y 1"


def test_no_i2c_bus() -> None:
    board = ada()
    board.remove("/dev/i2c-1")
    f = one(board, "I2C display")
    assert f.status is Status.FAIL and "no /dev/i2c-1" in f.detail
    assert "sudo modprobe i2c-dev" in f.fix and "dtoverlay=stratum1-i2c1" in f.fix


def test_i2c_not_permitted() -> None:
    board = ada()
    board.deny("/dev/i2c-1")
    f = one(board, "I2C display")
    assert f.status is Status.UNKNOWN and f.fix == "sudo stratum1 doctor"


# -- leftovers -------------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "pin"), [("dtoverlay=pps-gpio", 18), ("dtoverlay=pps-gpio,gpiopin=17", 17)])
def test_an_old_pps_gpio_line(line: str, pin: int) -> None:
    board = ada("raspios")
    board.set_config_txt(board.config_txt() + line + "\n")
    f = one(board, "leftovers")
    assert f.status is Status.FAIL
    assert f.detail == (
        f"a line from an old guide: '{line}' in /boot/firmware/config.txt (PPS on GPIO {pin}; the profile's is GPIO 4)"
    )
    assert f.fix == "sudo nano /boot/firmware/config.txt   # delete it, then sudo reboot"


def test_nohz_off_is_noted_not_failed() -> None:
    board = ada()
    board.add_console("nohz=off")
    f = one(board, "leftovers")
    assert f.status is Status.OK and f.detail.startswith("nohz=off in /boot/firmware/cmdline.txt: from old NTP guides")


# -- output ----------------------------------------------------------------------------------


def test_text_says_the_first_broken_link_and_what_to_type() -> None:
    board = ada()
    board.add_console()
    board.pulses = False
    text = printed(board)
    assert "✗ serial console          a login console on the GPS UART: console=serial0,115200" in text
    assert "\n   → sudo sed -i 's/ *console=serial0,115200//' /boot/firmware/cmdline.txt && sudo reboot\n" in text
    assert "✓ NMEA" in text
    assert text.endswith("first broken link: serial console\n")


def test_ascii_and_json() -> None:
    board = ada()
    board.deny("/dev/ttyAMA0")
    plan = doctor.plan_from(board, PROFILES, None, None)
    found = doctor.examine(board, plan, BUILD_DATE_NS)
    text = doctor.format_text(found, ascii_only=True)
    assert (
        text.isascii()
        and "[??] NMEA" in text
        and "[ok] profile" in text
        and "\n      -> sudo stratum1 doctor\n" in text
    )
    assert text.endswith("no broken link found; some could not be checked (above)\n")
    data = json.loads(doctor.format_json(found, plan))
    assert data["profile"] == "adafruit-ultimate-gps-hat" and data["broken"] is None
    nmea = next(link for link in data["links"] if link["link"] == "NMEA")
    assert nmea == {
        "link": "NMEA",
        "status": "unknown",
        "detail": "could not read /dev/gps0: Permission denied",
        "fix": "sudo stratum1 doctor",
    }


def test_the_command_line_default_capture_is_doctors() -> None:
    from appliance.hw import command

    assert command.DOCTOR_CAPTURE_S == doctor.CAPTURE_S


def test_render_runs_without_the_gps_libraries() -> None:
    """image/build runs `python3 -m appliance.hw render` with a bare python3 (no pynmea2 on the build host)."""
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['pynmea2'] = None; sys.modules['serial'] = None\n"
        "from appliance.hw.command import main; raise SystemExit(main(['list']))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "adafruit-ultimate-gps-hat" in r.stdout

"""GPIO PPS backends against injected fake gpiod (v2 and v1) and gpiozero modules: no hardware."""

from __future__ import annotations

import errno
import logging
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from appliance.io.gpio import (
    ClockMapper,
    GpiodV1Pps,
    GpiodV2Pps,
    GpioError,
    GpiozeroPps,
    open_gpio_pps,
)
from appliance.refclock.sample import Pulse

S = 1_000_000_000
REAL_NOW = 1_700_000_000 * S
MONO_NOW = 3_600 * S  # one hour of uptime
OFFSET = REAL_NOW - MONO_NOW


def mapper(step: int = 0) -> ClockMapper:
    """Clocks frozen at REAL_NOW and MONO_NOW; ``step`` added to realtime (a clock step)."""
    return ClockMapper(realtime_ns=lambda: REAL_NOW + step, monotonic_ns=lambda: MONO_NOW)


# ---------------------------------------------------------------- clock conversion


def test_offset_is_read_between_two_monotonic_readings() -> None:
    mono = iter([100, 300])
    m = ClockMapper(realtime_ns=lambda: 10_000, monotonic_ns=lambda: next(mono))
    assert m.offset_ns() == 10_000 - 200


def test_monotonic_stamps_are_converted_realtime_kept() -> None:
    m = mapper()
    assert m.to_local(MONO_NOW - 50_000_000, "monotonic") == REAL_NOW - 50_000_000
    assert m.to_local(REAL_NOW - 7, "realtime") == REAL_NOW - 7
    assert m.to_local(MONO_NOW - 50_000_000, "auto") == REAL_NOW - 50_000_000
    assert m.to_local(REAL_NOW - 7, "auto") == REAL_NOW - 7
    shifted = ClockMapper(lambda: REAL_NOW, lambda: MONO_NOW, from_kernel_ns=lambda t: t + 1)
    assert shifted.to_local(REAL_NOW, "realtime") == REAL_NOW + 1


# ---------------------------------------------------------------- a fake gpiod v2


@dataclass
class EdgeEvent:
    event_type: str
    timestamp_ns: int
    line_offset: int
    global_seqno: int
    line_seqno: int


class FakeRequest:
    def __init__(self, events: list[EdgeEvent]) -> None:
        self.events = events
        self.released = False
        self.waits: list[timedelta] = []

    def wait_edge_events(self, timeout: timedelta) -> bool:
        self.waits.append(timeout)
        return bool(self.events)

    def read_edge_events(self) -> list[EdgeEvent]:
        out, self.events[:] = list(self.events), []
        return out

    def release(self) -> None:
        self.released = True


def fake_gpiod_v2(events: list[EdgeEvent], refuse_realtime: bool = False, error: OSError | None = None) -> Any:
    g = types.SimpleNamespace()
    g.requests = []
    g.line = types.SimpleNamespace(
        Edge=types.SimpleNamespace(RISING="rising", FALLING="falling"),
        Clock=types.SimpleNamespace(REALTIME="realtime", MONOTONIC="monotonic"),
    )
    g.EdgeEvent = types.SimpleNamespace(Type=types.SimpleNamespace(RISING_EDGE="R", FALLING_EDGE="F"))
    g.LineSettings = lambda **kw: kw

    def request_lines(chip: str, consumer: str, config: dict[int, dict[str, str]]) -> FakeRequest:
        if error is not None:
            raise error
        (settings,) = config.values()
        if refuse_realtime and settings["event_clock"] == "realtime":
            raise OSError(errno.EINVAL, "Invalid argument")
        g.requests.append((chip, consumer, config))
        return FakeRequest(events)

    g.request_lines = request_lines
    return g


def test_v2_requests_realtime_and_reads_events() -> None:
    events = [EdgeEvent("R", REAL_NOW - 2 * S, 4, 10, 1), EdgeEvent("R", REAL_NOW - S, 4, 11, 2)]
    g = fake_gpiod_v2(events)
    pps = GpiodV2Pps(g, "/dev/gpiochip0", 4, mapper=mapper())
    assert pps.clock == "realtime"
    ((chip, consumer, config),) = g.requests
    assert (chip, consumer) == ("/dev/gpiochip0", "stratum1-pps")
    assert config == {4: {"edge_detection": "rising", "event_clock": "realtime"}}
    assert pps.fetch() == Pulse(REAL_NOW - S, 2)
    assert pps.fetch() == Pulse(REAL_NOW - S, 2)  # nothing new: the newest again
    pps.close()
    with pytest.raises(OSError):
        pps.fetch()


def test_v2_falls_back_to_monotonic_stamps_and_converts_them(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    events = [EdgeEvent("F", MONO_NOW - S // 10, 18, 1, 1), EdgeEvent("R", MONO_NOW - 1, 18, 2, 2)]
    g = fake_gpiod_v2(events, refuse_realtime=True)
    pps = GpiodV2Pps(g, "/dev/gpiochip0", 18, edge="falling", mapper=mapper())
    assert pps.clock == "monotonic"
    assert "converting from monotonic" in caplog.text
    assert pps.fetch() == Pulse(REAL_NOW - S // 10, 1)  # only the falling edge


def test_v2_busy_line_is_a_clear_error() -> None:
    g = fake_gpiod_v2([], error=OSError(errno.EBUSY, "Device or resource busy"))
    with pytest.raises(GpioError, match="line 4: cannot request edge events: Device or resource busy"):
        GpiodV2Pps(g, "/dev/gpiochip0", 4)
    g = fake_gpiod_v2([], error=FileNotFoundError(errno.ENOENT, "No such file"))
    with pytest.raises(GpioError, match="/dev/gpiochip9: no such GPIO chip"):
        GpiodV2Pps(g, "/dev/gpiochip9", 4)


# ---------------------------------------------------------------- a fake gpiod v1


@dataclass
class LineEvent:
    type: int
    sec: int
    nsec: int


def fake_gpiod_v1(events: list[LineEvent]) -> Any:
    g = types.SimpleNamespace(LINE_REQ_EV_RISING_EDGE=1, LINE_REQ_EV_FALLING_EDGE=2)
    g.LineEvent = types.SimpleNamespace(RISING_EDGE=1, FALLING_EDGE=2)
    g.log = []

    class Line:
        def request(self, consumer: str, type: int) -> None:
            g.log.append(("request", consumer, type))

        def event_wait(self, sec: int, nsec: int) -> bool:
            g.log.append(("wait", sec, nsec))
            return bool(events)

        def event_read(self) -> LineEvent:
            return events.pop(0)

        def release(self) -> None:
            g.log.append(("release",))

    class Chip:
        def __init__(self, name: str) -> None:
            g.log.append(("chip", name))

        def get_line(self, n: int) -> Line:
            return Line()

        def close(self) -> None:
            g.log.append(("close",))

    g.Chip = Chip
    return g


def test_v1_tells_monotonic_from_realtime_stamps_by_value() -> None:
    # Linux >= 5.7 stamps v1 events with CLOCK_MONOTONIC, older kernels with CLOCK_REALTIME.
    events = [
        LineEvent(1, MONO_NOW // S - 1, 5),
        LineEvent(2, MONO_NOW // S - 1, 100_000_005),
        LineEvent(1, REAL_NOW // S, 7),
    ]
    g = fake_gpiod_v1(events)
    pps = GpiodV1Pps(g, "gpiochip0", 4, mapper=mapper())
    assert ("request", "stratum1-pps", 1) in g.log
    assert pps.fetch(0.25) == Pulse(REAL_NOW + 7, 2)
    assert g.log[2:4] == [("wait", 0, 250_000_000), ("wait", 0, 0)]  # only the first wait waits
    assert pps.fetch() == Pulse(REAL_NOW + 7, 2)
    events.append(LineEvent(1, MONO_NOW // S, 9))
    assert pps.fetch() == Pulse(REAL_NOW + 9, 3)
    pps.close()
    assert g.log[-2:] == [("release",), ("close",)]


# ---------------------------------------------------------------- gpiozero


def fake_gpiozero(fail: Exception | None = None) -> Any:
    z = types.SimpleNamespace(devices=[])

    class DigitalInputDevice:
        def __init__(self, pin: int, pull_up: bool | None, active_state: bool) -> None:
            if fail is not None:
                raise fail
            self.pin = pin
            self.when_activated: Callable[[], None] | None = None
            self.when_deactivated: Callable[[], None] | None = None
            self.closed = False
            z.devices.append(self)

        def close(self) -> None:
            self.closed = True

    z.DigitalInputDevice = DigitalInputDevice
    return z


def test_gpiozero_timestamps_in_python_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    now = iter([REAL_NOW, REAL_NOW + S])
    z = fake_gpiozero()
    pps = GpiozeroPps(z, 4, now_ns=lambda: next(now))
    assert "jitter" in caplog.text
    (dev,) = z.devices
    assert pps.fetch() is None
    dev.when_activated()
    dev.when_activated()
    assert pps.fetch() == Pulse(REAL_NOW + S, 2)
    pps.close()
    assert dev.closed


def test_gpiozero_fetch_waits_for_an_edge_from_its_thread() -> None:
    z = fake_gpiozero()
    pps = GpiozeroPps(z, 4, edge="falling", now_ns=lambda: REAL_NOW)
    (dev,) = z.devices
    assert dev.when_activated is None
    timer = threading.Timer(0.02, dev.when_deactivated)
    timer.start()
    assert pps.fetch(2.0) == Pulse(REAL_NOW, 1)
    timer.join()


# ---------------------------------------------------------------- choosing a backend


def importer_of(modules: dict[str, Any]) -> Callable[[str], Any]:
    def importer(name: str) -> Any:
        if name not in modules:
            raise ImportError(f"No module named {name!r}")
        return modules[name]

    return importer


def test_open_prefers_gpiod_v2_then_v1_then_gpiozero() -> None:
    v2 = fake_gpiod_v2([])
    v1 = fake_gpiod_v1([])
    z = fake_gpiozero()
    assert isinstance(open_gpio_pps(4, importer=importer_of({"gpiod": v2, "gpiozero": z})), GpiodV2Pps)
    assert isinstance(open_gpio_pps(4, importer=importer_of({"gpiod": v1, "gpiozero": z})), GpiodV1Pps)
    assert isinstance(open_gpio_pps(4, importer=importer_of({"gpiozero": z})), GpiozeroPps)
    assert isinstance(
        open_gpio_pps(4, backend="gpiozero", importer=importer_of({"gpiod": v2, "gpiozero": z})), GpiozeroPps
    )


def test_no_backend_is_a_clear_error() -> None:
    with pytest.raises(GpioError) as e:
        open_gpio_pps(18, importer=importer_of({}))
    msg = str(e.value)
    assert "python3-libgpiod" in msg and "pip install gpiod" in msg and "gpiopin=18" in msg
    with pytest.raises(GpioError, match="neither the v2 nor the v1 API"):
        open_gpio_pps(18, backend="gpiod", importer=importer_of({"gpiod": types.SimpleNamespace()}))


def test_gpiozero_failure_is_a_gpio_error() -> None:
    z = fake_gpiozero(fail=RuntimeError("GPIO4 is in use"))
    with pytest.raises(GpioError, match="GPIO4: gpiozero cannot use the pin: GPIO4 is in use"):
        open_gpio_pps(4, importer=importer_of({"gpiozero": z}))


def test_bad_edge() -> None:
    with pytest.raises(ValueError, match="edge"):
        open_gpio_pps(4, edge="assert", importer=importer_of({}))  # type: ignore[arg-type]

"""The I2C bus the displays talk through: a small interface, and the real backend on smbus2.

Two kinds of transfer are all the displays need (as gpiozero splits devices
from pins, :mod:`appliance.io.lcd` knows the devices and this module only the
bus):

- :meth:`I2cBus.write_byte`: one byte to a device, no register (SMBus "send
  byte"): a PCF8574 port expander sets its eight pins to it;
- :meth:`I2cBus.write_block`: a control byte then up to 32 bytes (SMBus
  "write I2C block"): an SSD1306 takes 0x00 + commands or 0x40 + pixels;
- :meth:`I2cBus.read_byte` probes whether anything answers at an address.

Every failure is an :class:`OSError`: ``ENXIO``/``EREMOTEIO`` when no device
acknowledges (unplugged), ``ENOENT`` when there is no bus. The fake bus,
:class:`appliance.fakes.i2c.FakeI2cBus`, raises the same.

Wiring on a Raspberry Pi: SDA is GPIO2 (pin 3), SCL GPIO3 (pin 5), 5 V
(pin 2 or 4) and GND (pin 6); enable the bus with ``dtparam=i2c_arm=on`` and
it appears as ``/dev/i2c-1``::

    bus = SmbusBus(1)
    bus.write_byte(0x27, 0x08)   # PCF8574 backpack: backlight on, everything else low
"""

from __future__ import annotations

from typing import Any, Protocol

#: The most bytes one SMBus block write carries after its control byte.
BLOCK_MAX = 32


class I2cBus(Protocol):
    """What a display needs of a bus; addresses are 7-bit."""

    def write_byte(self, address: int, value: int) -> None: ...

    def write_block(self, address: int, control: int, data: bytes) -> None: ...

    def read_byte(self, address: int) -> int: ...


class SmbusBus:
    """``/dev/i2c-N`` through smbus2, opened on first use and again after :meth:`close`."""

    def __init__(self, bus: int | str = 1) -> None:
        self.bus = bus
        self._smbus: Any = None

    def _open(self) -> Any:
        if self._smbus is None:
            import smbus2  # type: ignore[import-untyped,unused-ignore]

            self._smbus = smbus2.SMBus(self.bus)
        return self._smbus

    def write_byte(self, address: int, value: int) -> None:
        self._open().write_byte(address, value)

    def write_block(self, address: int, control: int, data: bytes) -> None:
        if len(data) > BLOCK_MAX:
            raise ValueError(f"an SMBus block is at most {BLOCK_MAX} bytes, not {len(data)}")
        self._open().write_i2c_block_data(address, control, list(data))

    def read_byte(self, address: int) -> int:
        return int(self._open().read_byte(address))

    def close(self) -> None:
        if self._smbus is not None:
            self._smbus.close()
            self._smbus = None

"""The Raspberry Pi side of a board profile: what the Pi needs for a HAT, which HAT it has, and what is broken.

- :mod:`appliance.hw.boot` (pure): from a profile (``appliance/hw_profiles/*.toml``, read by
  :mod:`appliance.refclock.profiles`) to the files a board needs: ``config.txt`` lines, the
  ``cmdline.txt`` words to remove, udev rules, device-tree overlay sources, ``/etc/stratum1/ntp.conf``.
- :mod:`appliance.hw.detect` (pure): the HAT's ID EEPROM strings to a profile.
- :mod:`appliance.hw.doctor` (pure): the checks of ``stratum1 doctor``, over a board view
  (:class:`appliance.hw.doctor.Board`; the real one is :mod:`appliance.io.board`, the fake
  :mod:`appliance.fakes.board`).

``python3 -m appliance.hw list | render | detect | doctor`` runs them (the same as ``stratum1 hw ...``).
"""

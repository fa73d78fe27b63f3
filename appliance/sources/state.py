"""Moved: the system state is :mod:`appliance.state` (below both ``ntp/`` and ``sources/``, no package cycle).

This name stays only until the branches written against it are merged; import from :mod:`appliance.state`.
"""

from appliance.state import PHI_PPB, STRATUM_UNSYNC, UNSYNCHRONISED, SystemState, local_clock_state

__all__ = ["PHI_PPB", "STRATUM_UNSYNC", "UNSYNCHRONISED", "SystemState", "local_clock_state"]

"""The image and package tests run Debian's own tools (mmdebstrap, dpkg-buildpackage, pybuild, lintian).

tests/conftest.py points child Pythons at the appliance this run imported (PYTHONSAFEPATH, PYTHONPATH);
inside a Debian chroot those would break the system's Python scripts (pybuild finds its own modules
beside itself), so every test here runs without them.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module", autouse=True)
def _debian_tools_get_a_plain_python_environment() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("PYTHONSAFEPATH", raising=False)
        mp.delenv("PYTHONPATH", raising=False)
        yield

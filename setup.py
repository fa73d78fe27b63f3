"""Build hook for the one compiled part: the NTP server's data plane (appliance/io/_fastpath.c).

Everything else is in pyproject.toml. The extension is optional: where it cannot be
built (no compiler, not Linux) the install goes on and the server runs its Python path.
"""

import sys

from setuptools import Extension, setup

ext_modules = []
if sys.platform.startswith("linux"):
    ext_modules.append(
        Extension(
            "appliance.io._fastpath",
            ["appliance/io/_fastpath.c"],
            extra_compile_args=["-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers", "-ffp-contract=off"],
            libraries=["m"],
            optional=True,
        )
    )

setup(ext_modules=ext_modules)

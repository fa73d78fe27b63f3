"""Build tests/noclock.c (an LD_PRELOAD library: the kernel clock's writes never reach the host) and prove it loads.

:func:`noclock_env` compiles it into a directory, then runs this Python with
the library preloaded and checks that ``ctypes.CDLL(None).adjtimex`` *is* the
library's: ld.so only warns when a preload fails, so without that check a
daemon could reach the real ``adjtimex``. Skips (fails in CI) without a C
compiler.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from support import require

SOURCE = Path(__file__).with_name("noclock.c")

_CHECK = """
import ctypes, sys
shim = ctypes.CDLL(sys.argv[1])
seen = ctypes.CDLL(None)
same = all(ctypes.cast(getattr(seen, f), ctypes.c_void_p).value == ctypes.cast(getattr(shim, f), ctypes.c_void_p).value
           for f in ("adjtimex", "ntp_adjtime", "clock_adjtime", "clock_settime", "settimeofday"))
sys.exit(0 if same and ctypes.c_int.in_dll(seen, "noclock_loaded").value == 1 else 3)
"""


def noclock_env(directory: Path, log: Path) -> dict[str, str]:
    """Environment entries that preload the library (built in ``directory``) and log its calls to ``log``."""
    cc = shutil.which("cc") or shutil.which("gcc")
    require(cc is not None, "no C compiler for tests/noclock.c")
    assert cc is not None
    library = directory / "noclock.so"
    subprocess.run([cc, "-shared", "-fPIC", "-O2", "-Wall", "-o", str(library), str(SOURCE)], check=True)
    library.chmod(0o755)
    env = {"LD_PRELOAD": str(library), "NOCLOCK_LOG": str(log)}
    check = subprocess.run([sys.executable, "-c", _CHECK, str(library)], env={**os.environ, **env})
    assert check.returncode == 0, "the noclock library does not stand in for libc's clock calls"
    return env

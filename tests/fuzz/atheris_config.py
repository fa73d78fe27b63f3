"""Long fuzzing of the config parser with atheris (coverage-guided), outside CI.

    pip install atheris
    PYTHONPATH=. python tests/fuzz/atheris_config.py --make-corpus /tmp/config-seeds
    PYTHONPATH=. python tests/fuzz/atheris_config.py -max_total_time=300 -rss_limit_mb=2048 \
        -dict=tests/fuzz/ntp.conf.dict /tmp/config-corpus /tmp/config-seeds

``--make-corpus DIR`` copies the seed configs (the tutorials' and distributions'
ntp.conf files in the data directory ``tests/support.py`` finds) into DIR.

Each input is a tree of files: the octets up to the first ``\\0\\1`` are
``/etc/stratum1/ntp.conf``, the next parts are the files its ``includefile``
lines may name (``a.conf``, ``b.conf``, ``sub/c.conf``, ``../d.conf``), read
through a fake reader that decodes them as UTF-8 (a part that is not UTF-8 is
an unreadable include). A main file that is not UTF-8 is left to
``load_config``. The parser must return a Config or raise a ConfigError that
names a file it read and a line that file has; any other exception is a crash.
CI runs the same property with hypothesis (tests/unit/config/test_fuzz.py);
this finds deeper paths given time.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports():
    from appliance.config import Config, ConfigError, parse_config

ROOT = "/etc/stratum1/ntp.conf"
INCLUDES = [os.path.normpath(os.path.join("/etc/stratum1", n)) for n in ("a.conf", "b.conf", "sub/c.conf", "../d.conf")]


def one_input(data: bytes) -> None:
    parts = data.split(b"\0\1")
    try:
        text = parts[0].decode("utf-8")
    except UnicodeDecodeError:
        return
    files = dict(zip(INCLUDES, parts[1:], strict=False))
    read = {ROOT: text}

    def reader(path: str) -> str:
        content = files.get(os.path.normpath(path))
        if content is None:
            raise FileNotFoundError(2, "No such file or directory")
        read[path] = content.decode("utf-8")
        return read[path]

    try:
        result = parse_config(text, ROOT, include_loader=reader)
    except ConfigError as e:
        where = e.location
        if where is None or where.file not in read or not 1 <= where.line <= read[where.file].count("\n") + 1:
            raise AssertionError(f"an error without a true file:line: {e!s}") from e
        if str(e) != f"{where.file}:{where.line}: {e.message}" or "\n" in e.message:
            raise AssertionError(f"not a one-line file:line error: {e!s}") from e
        return
    if not isinstance(result, Config):
        raise AssertionError(f"parse_config returned {type(result)}")


def make_corpus(out: Path) -> None:
    """Seeds: the seed configs, as they are."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from support import DATA

    out.mkdir(parents=True, exist_ok=True)
    seeds = sorted((DATA / "seed-configs").glob("*.conf"))
    for conf in seeds:
        shutil.copy(conf, out / conf.name)
    print(f"{len(seeds)} seeds from {DATA / 'seed-configs'} in {out}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--make-corpus":
        make_corpus(Path(sys.argv[2]))
        sys.exit(0)
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()

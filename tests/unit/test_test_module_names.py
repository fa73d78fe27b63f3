"""Every test module's file name is unique across tests/: pytest imports them by basename (rootdir-relative
imports are off), so a second ``test_keys.py`` in another directory stops the whole run at collection."""

from __future__ import annotations

from collections import defaultdict

from support import ROOT


def test_no_two_test_modules_share_a_file_name() -> None:
    by_name: dict[str, list[str]] = defaultdict(list)
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        by_name[path.name].append(str(path.relative_to(ROOT)))
    assert {name: paths for name, paths in by_name.items() if len(paths) > 1} == {}

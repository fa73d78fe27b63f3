"""What the status socket hands a reader: the snapshot's JSON, with the command texts rendered once (pure).

The line is :meth:`~appliance.status.snapshot.Snapshot.to_json`'s object plus one key, ``"text"``: what
``stratum1 status``, ``stratum1 status --line`` and ``stratum1 peers`` print for this snapshot
(:mod:`appliance.status.text`), by those names. The daemon renders them once per snapshot (a second's
worth of work is a few tens of microseconds) so that the commands, which people type over SSH on a busy
appliance, print them without importing the snapshot's classes and the renderers (most of a new Python
process's start-up; ``bench/status_under_flood.py``). Readers that want the values ignore ``"text"``:
:meth:`Snapshot.from_dict` reads the fields it knows.
"""

from __future__ import annotations

import json

from appliance.status.snapshot import Snapshot
from appliance.status.text import health_line, peers_text, status_text

#: The key the texts are under, and the text of each command (``status --line`` is ``line``).
TEXT_KEY = "text"


def rendered(snap: Snapshot) -> dict[str, str]:
    """What each command prints for ``snap`` alone (no earlier snapshot: ``status`` shows the snapshot's rate)."""
    return {"status": status_text(snap), "line": health_line(snap) + "\n", "peers": peers_text(snap)}


def status_line(snap: Snapshot) -> bytes:
    """The status socket's payload for ``snap``: one JSON object and a newline (see the module docstring)."""
    d = snap.to_dict()
    d[TEXT_KEY] = rendered(snap)
    return json.dumps(d, separators=(",", ":"), sort_keys=True).encode() + b"\n"

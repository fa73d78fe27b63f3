"""The status page's WSGI application: GET and HEAD on five paths, nothing that writes.

=================  ============================================================  ==========================
path               what                                                          Cache-Control
=================  ============================================================  ==========================
``/``              the page (:mod:`appliance.web.page`) from a fresh snapshot    no-store
``/status.json``   the snapshot as the status socket gave it, and the page's     no-store
                   ``words`` (:func:`appliance.web.page.words`); 503 when it
                   is not there, with ``{"error": ...}``
``/plot.svg``      offset, jitter, frequency over the last day from the          no-store
                   loopstats files (:mod:`appliance.status.plot`)
``/static/NAME``   the script and the style sheet, read once at start from the   max-age=3600
                   package data (only the names shipped; no path is ever joined)
=================  ============================================================  ==========================

Any other method is 405 with ``Allow: GET, HEAD``; any other path 404. Every answer carries
:data:`SECURITY_HEADERS`: a Content-Security-Policy that allows this origin's script, style, images and
fetch alone (no inline script, no framing, no forms, no ``<base>``), ``X-Content-Type-Options: nosniff``,
``X-Frame-Options: DENY``, ``Referrer-Policy: no-referrer``. The application reads through the callables it
is given (the socket, the plot), so tests run it without a daemon.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from importlib import resources
from typing import Any

from appliance.status.snapshot import Snapshot
from appliance.web.page import page, words

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
)
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}

StartResponse = Callable[[str, list[tuple[str, str]]], Any]


def shipped_static() -> dict[str, bytes]:
    """The files of ``appliance/web/static`` (package data) by name, read once."""
    out = {}
    for f in resources.files("appliance.web").joinpath("static").iterdir():
        if f.is_file() and any(f.name.endswith(ext) for ext in STATIC_TYPES):
            out[f.name] = f.read_bytes()
    return out


class StatusApp:
    """The WSGI callable; ``read_status`` returns the socket's JSON (raises OSError), ``plot`` the SVG."""

    def __init__(
        self,
        read_status: Callable[[], bytes],
        plot: Callable[[], str],
        static: Mapping[str, bytes] | None = None,
    ) -> None:
        self.read_status = read_status
        self.plot = plot
        self.static = dict(shipped_static() if static is None else static)

    def snapshot(self) -> tuple[bytes, Snapshot | None, str]:
        """The socket's bytes, the snapshot read from them, and an error ("" when there is none)."""
        try:
            raw = self.read_status()
            return raw, Snapshot.from_json(raw), ""
        except (OSError, ValueError) as e:
            return b"", None, str(e) or type(e).__name__

    def route(self, path: str) -> tuple[str, str, bytes, str]:
        """(status line, content type, body, cache-control) for a GET of ``path``."""
        if path == "/":
            _, snap, error = self.snapshot()
            return "200 OK", "text/html; charset=utf-8", page(snap, error).encode(), "no-store"
        if path == "/status.json":
            raw, snap, error = self.snapshot()
            if snap is None:
                body = json.dumps({"error": f"the daemon's status socket did not answer: {error}"}).encode()
                return "503 Service Unavailable", "application/json", body, "no-store"
            d = json.loads(raw)  # read once more as a dict: the words go beside the snapshot's own fields
            d["words"] = words(snap)
            body = json.dumps(d, separators=(",", ":"), sort_keys=True).encode()
            return "200 OK", "application/json", body, "no-store"
        if path == "/plot.svg":
            return "200 OK", "image/svg+xml; charset=utf-8", self.plot().encode(), "no-store"
        if path.startswith("/static/"):
            name = path.removeprefix("/static/")
            asset = self.static.get(name)
            if asset is not None:
                return "200 OK", STATIC_TYPES["." + name.rpartition(".")[2]], asset, "max-age=3600"
        return "404 Not Found", "text/plain; charset=utf-8", b"not found\n", "no-store"

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            status, ctype, body, cache = (
                "405 Method Not Allowed",
                "text/plain; charset=utf-8",
                b"read-only\n",
                "no-store",
            )
            extra = [("Allow", "GET, HEAD")]
        else:
            status, ctype, body, cache = self.route(environ.get("PATH_INFO", "/") or "/")
            extra = []
        headers = [
            ("Content-Type", ctype),
            ("Content-Length", str(len(body))),
            ("Cache-Control", cache),
            ("Server", "stratum1-web"),  # wsgiref would name its and Python's versions
            *SECURITY_HEADERS,
            *extra,
        ]
        start_response(status, headers)
        return [b""] if method == "HEAD" else [body]

"""The read-only web status page (``stratum1 web --listen LAN-ADDR[:PORT]``): its own process, fed from the
status socket; :mod:`appliance.web.page` renders, :mod:`appliance.web.app` answers, :mod:`appliance.web.server`
listens. ``static/`` holds the page's script and style sheet (package data: the page works offline)."""

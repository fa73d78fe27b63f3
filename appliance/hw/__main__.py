"""``python3 -m appliance.hw``: see :mod:`appliance.hw.command`."""

import sys

from appliance.hw.command import main

sys.exit(main())

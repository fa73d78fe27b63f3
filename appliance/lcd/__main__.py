"""``python3 -m appliance.lcd``: the display process (see :mod:`appliance.lcd.runner`)."""

import sys

from appliance.lcd.runner import main

sys.exit(main())

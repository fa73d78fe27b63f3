import sys

from appliance.command import main

sys.exit(main())

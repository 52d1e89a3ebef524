"""``python -m worldstereo_ros.cli``: the same as the ``worldstereo-ros`` console script."""

import sys

from worldstereo_ros.cli import main

sys.exit(main())

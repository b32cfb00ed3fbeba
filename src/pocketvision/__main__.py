"""``python -m pocketvision`` (also the entry point torchrun uses: ``-m pocketvision train``)."""

import sys

from pocketvision.cli import main

sys.exit(main())

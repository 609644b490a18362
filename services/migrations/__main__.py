"""`python -m services.migrations` is the same as `python -m services.migrations.runner`."""

import sys

from services.migrations.runner import main

sys.exit(main())

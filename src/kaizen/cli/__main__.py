"""``python -m kaizen.cli``: the same as the ``kaizen`` command."""

import sys

from kaizen.cli import main

sys.exit(main())

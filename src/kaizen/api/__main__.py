"""``python -m kaizen.api``: print the sha256 hex digest of the token read from stdin."""

import sys

from kaizen.api.auth import main

raise SystemExit(main(sys.argv[1:]))

#!/usr/bin/env bash
# Start, stop or check the suite's PostgreSQL primary (127.0.0.1:5501) + synchronous standby (5502).
exec "${PYTHON:-python3}" "$(dirname "$0")/../servers.py" pg-ha "${1:-start}"

#!/usr/bin/env bash
# Start, stop or check the suite's 3-node MariaDB Galera cluster (127.0.0.1:4401-4403).
exec "${PYTHON:-python3}" "$(dirname "$0")/../servers.py" galera "${1:-start}"

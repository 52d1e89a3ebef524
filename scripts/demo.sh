#!/usr/bin/env bash
# The main job: set up (idempotent), then run the demo (imagine four paths from a snapshot the
# project renders itself) and print where the outputs are. Extra arguments go to `worldstereo-ros demo`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/worldstereo-ros" demo "$@"

#!/usr/bin/env bash
# The main job: set up (idempotent), then run it. Until the imagination pipeline lands this is the
# smoke run: a replay node in another process publishes a synthetic RGB-D sequence and this process
# receives and checks it over DDS. Extra arguments go to `worldstereo-ros smoke`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/worldstereo-ros" smoke "$@"

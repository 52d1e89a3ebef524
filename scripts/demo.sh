#!/usr/bin/env bash
# The main job: set up (idempotent), then imagine four trajectories (orbit, up, left, right) from a
# snapshot of the procedural room and write frames, videos, the fused cache, poses, a COLMAP model and a
# mesh to outputs/demo. Extra arguments go to `worldstereo-ros demo` (e.g. --rgbd-folder ../shared/data/7scenes-redkitchen).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
cd "$ROOT"
exec "$ROOT/.venv/bin/worldstereo-ros" demo "$@"

#!/usr/bin/env bash
# The main job: set up (idempotent), then imagine four trajectories (orbit, up, left, right) from a
# snapshot of the procedural room and write frames, videos, the fused cache, poses, a COLMAP model and a
# mesh to outputs/demo. Extra arguments go to `worldstereo-ros demo` (e.g. --rgbd-folder ../shared/data/7scenes-redkitchen).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
cd "$ROOT"
# ROS 2 tools and the launch runner find the package through the environment's ament index.
export AMENT_PREFIX_PATH="$ROOT/.venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
# Large images arrive whole between processes: the project's Fast DDS profile (docs/dds-tuning.md) unless one is set.
# Fast DDS 3.x reads FASTDDS_DEFAULT_PROFILES_FILE (FASTRTPS_DEFAULT_PROFILES_FILE is deprecated there).
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$ROOT/config/fastdds.xml}"
exec "$ROOT/.venv/bin/worldstereo-ros" demo "$@"

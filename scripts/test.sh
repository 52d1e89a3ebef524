#!/usr/bin/env bash
# The test command: set up (idempotent), then run the whole test suite.
# Extra arguments go to pytest, e.g. scripts/test.sh test/geometry -k render
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$ROOT/scripts/setup.sh"
cd "$ROOT"
# ROS 2 tools and the launch runner find the package through the environment's ament index.
export AMENT_PREFIX_PATH="$ROOT/.venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
# Large images arrive whole between processes: the project's Fast DDS profile (docs/dds-tuning.md) unless one is set.
# Fast DDS 3.x reads FASTDDS_DEFAULT_PROFILES_FILE (FASTRTPS_DEFAULT_PROFILES_FILE is deprecated there).
export FASTDDS_DEFAULT_PROFILES_FILE="${FASTDDS_DEFAULT_PROFILES_FILE:-$ROOT/config/fastdds.xml}"
# DDS traffic of the tests stays on this machine.
export ROS_AUTOMATIC_DISCOVERY_RANGE="${ROS_AUTOMATIC_DISCOVERY_RANGE:-LOCALHOST}"
# Lint first (settings in ruff.toml): a style error fails the run before any test starts.
"$ROOT/.venv/bin/ruff" check "$ROOT"
exec "$ROOT/.venv/bin/python" -m pytest "${@:-test}" -q -rs

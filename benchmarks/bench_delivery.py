"""Large-message delivery between two processes on this host (issue 14 item 10): messages sent vs received per
topic size, reliability and DDS profile, printed as a table for the README.

Each row starts a fresh publisher process and a fresh subscriber process (Fast DDS reads its XML profile when
a process creates its first participant, so a profile cannot be switched inside one process). The subscriber
is matched before the first message; the publisher sends ``--count`` sensor_msgs/Image messages of the given
size at ``--rate-hz`` and then waits for the subscriber's count.

    .venv/bin/python benchmarks/bench_delivery.py [--count 50] [--rate-hz 10] [--sizes-mb 0.3 0.9 1.8]
        [--profile config/fastdds.xml] [--quick]

Columns: size, QoS, profile (``none`` = Fast DDS defaults, else the XML file), received/sent, and the time
from the first send to the last message received.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_PROFILE = REPO / "config" / "fastdds.xml"
#: the variables naming a Fast DDS profile: 3.x reads FASTDDS_*; FASTRTPS_* (2.x) still works in 3.x but is
#: deprecated. Both are unset for "no profile"; the profile goes in the first unless --profile-var says otherwise.
PROFILE_VARS = ("FASTDDS_DEFAULT_PROFILES_FILE", "FASTRTPS_DEFAULT_PROFILES_FILE")

SUBSCRIBER = r"""
import sys, time
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy
from sensor_msgs.msg import Image
topic, reliable, expected, timeout_s = sys.argv[1], sys.argv[2] == "reliable", int(sys.argv[3]), float(sys.argv[4])
rclpy.init()
node = rclpy.create_node("delivery_subscriber")
seen, last = set(), [0.0]
def on_image(msg):
    seen.add(msg.header.frame_id)
    last[0] = time.monotonic()
qos = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                 reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT)
node.create_subscription(Image, topic, on_image, qos)
print("ready", flush=True)
deadline = time.monotonic() + timeout_s
while time.monotonic() < deadline and len(seen) < expected:
    rclpy.spin_once(node, timeout_sec=0.05)
    flag = open(sys.argv[5]).read().split()
    # the publisher has sent everything: stop once nothing has arrived for 2 s (lost messages never will)
    if flag and time.monotonic() - max(last[0], float(flag[1])) > 2.0:
        break
print(f"received {len(seen)} {last[0]:.6f}", flush=True)
node.destroy_node()
rclpy.try_shutdown()
"""

PUBLISHER = r"""
import sys, time
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy, HistoryPolicy
from sensor_msgs.msg import Image
topic, reliable, count, rate_hz, size, flag = (sys.argv[1], sys.argv[2] == "reliable", int(sys.argv[3]),
                                              float(sys.argv[4]), int(sys.argv[5]), sys.argv[6])
rclpy.init()
node = rclpy.create_node("delivery_publisher")
qos = QoSProfile(depth=10, history=HistoryPolicy.KEEP_LAST,
                 reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT)
pub = node.create_publisher(Image, topic, qos)
deadline = time.monotonic() + 60
while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
    rclpy.spin_once(node, timeout_sec=0.05)
if pub.get_subscription_count() == 0:
    print("no subscriber matched within 60 s", flush=True)
    sys.exit(3)
time.sleep(0.5)  # discovery of the reverse direction settles (reliable readers' acknowledgements)
width = 640
msg = Image(encoding="rgb8", width=width, height=size // (3 * width), step=3 * width)
msg.data = bytes(msg.step * msg.height)
t0 = time.monotonic()
print(f"first {time.monotonic():.6f}", flush=True)
for i in range(count):
    msg.header.frame_id = str(i)
    pub.publish(msg)
    time.sleep(max(0.0, t0 + (i + 1) / rate_hz - time.monotonic()))
with open(flag, "w") as f:
    f.write(f"done {time.monotonic():.6f}")
time.sleep(3.0)  # a reliable writer keeps repairing while the subscriber drains
node.destroy_node()
rclpy.try_shutdown()
"""


def run_case(size_bytes: int, reliable: bool, profile: Path | None, count: int, rate_hz: float,
             tmp: Path, index: int, profile_vars: tuple[str, ...] = PROFILE_VARS[:1]) -> tuple[int, float]:
    """(messages received, seconds from the first send to the last receipt) for one configuration; the
    profile is passed in each of ``profile_vars``."""
    env = {k: v for k, v in os.environ.items() if k not in PROFILE_VARS}
    if profile is not None:
        env.update({var: str(profile) for var in profile_vars})
    topic = f"delivery_{os.getpid()}_{index}"
    flag = tmp / f"flag_{index}"
    flag.write_text("")
    qos = "reliable" if reliable else "best_effort"
    timeout_s = 30.0 + count / rate_hz * 3
    sub = subprocess.Popen([sys.executable, "-c", SUBSCRIBER, topic, qos, str(count), str(timeout_s), str(flag)],
                           stdout=subprocess.PIPE, text=True, env=env)
    if sub.stdout.readline().strip() != "ready":
        raise RuntimeError("the subscriber did not start")
    pub = subprocess.Popen([sys.executable, "-c", PUBLISHER, topic, qos, str(count), str(rate_hz), str(size_bytes),
                            str(flag)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        out_sub, _ = sub.communicate(timeout=timeout_s + 30)
        out_pub, _ = pub.communicate(timeout=30)
    finally:
        for p in (sub, pub):
            if p.poll() is None:
                p.kill()
    first = next((float(line.split()[1]) for line in out_pub.splitlines() if line.startswith("first ")), None)
    line = next((line for line in out_sub.splitlines() if line.startswith("received ")), None)
    if first is None or line is None:
        raise RuntimeError(f"no result: publisher said {out_pub!r}, subscriber said {out_sub!r}")
    _, received, last = line.split()
    return int(received), (float(last) - first) if int(received) else float("nan")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--rate-hz", type=float, default=10.0)
    parser.add_argument("--sizes-mb", type=float, nargs="+", default=[0.3, 0.9, 1.8])
    parser.add_argument("--profile", type=Path, default=DEFAULT_PROFILE,
                        help="the Fast DDS XML profile compared with the defaults")
    parser.add_argument("--profile-var", choices=PROFILE_VARS, action="append",
                        help=f"pass the profile in this variable (default: {PROFILE_VARS[0]}), to see which are read")
    parser.add_argument("--quick", action="store_true", help="only 0.9 MB, 20 messages (CI smoke)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes_mb, args.count = [0.9], 20
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(60 + os.getpid() % 40))
    profiles: list[Path | None] = [None] + ([args.profile.resolve()] if args.profile.is_file() else [])
    import tempfile

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        index = 0
        for size_mb in args.sizes_mb:
            size = int(size_mb * 1e6) // (3 * 640) * (3 * 640)
            for reliable in (False, True):
                for profile in profiles:
                    index += 1
                    received, span = run_case(size, reliable, profile, args.count, args.rate_hz, Path(tmp), index,
                                              tuple(args.profile_var or PROFILE_VARS[:1]))
                    rows.append((size / 1e6, "reliable" if reliable else "best effort",
                                 profile.name if profile else "none (Fast DDS defaults)", received, span))
                    print(f"  {rows[-1]}", file=sys.stderr, flush=True)
    rmw = os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp (default)")
    print(f"| image size | QoS | DDS profile | received / sent at {args.rate_hz:g} Hz | first send -> last receipt |")
    print("|---|---|---|---|---|")
    for size_mb, qos, profile, received, span in rows:
        print(f"| {size_mb:.2f} MB | {qos} | {profile} | {received} / {args.count} | {span:.1f} s |")
    print(f"(RMW: {rmw}; profile passed in {', '.join(args.profile_var or PROFILE_VARS[:1])}; two processes on "
          f"this host; net.core.rmem_max = {_sysctl('net.core.rmem_max')}, "
          f"wmem_max = {_sysctl('net.core.wmem_max')})")
    return 0


def _sysctl(name: str) -> str:
    try:
        return Path("/proc/sys/" + name.replace(".", "/")).read_text().strip()
    except OSError:
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())

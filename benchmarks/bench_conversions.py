"""Benchmark the message conversions (issue 2): PointCloud2 pack/unpack of 1M xyz+rgb points and
640x480 image conversions, side by side with a point-by-point baseline in the same run.

Run: .venv/bin/python benchmarks/bench_conversions.py [--points 1000000] [--repeats 5]
Prints a markdown table; targets: pack 1M points <= 30 ms and >= 20x faster than the baseline.
"""

from __future__ import annotations

import argparse
import struct
import time

import numpy as np
from sensor_msgs.msg import PointCloud2
from std_msgs.msg import Header

from worldstereo_ros.ros.conversions.image import depth_from_image, depth_to_image, rgb_from_image, rgb_to_image
from worldstereo_ros.ros.conversions.pointcloud2 import (
    XYZRGB_FIELDS,
    pack_rgb,
    pointcloud2_to_xyzrgb,
    xyzrgb_to_pointcloud2,
)


def best_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * min(times)


def naive_cloud(points: list[tuple], header: Header) -> PointCloud2:
    """The classic create_cloud loop: struct.pack per point from a list of tuples (the baseline)."""
    fmt = struct.Struct("<ffff")
    buf = bytearray(fmt.size * len(points))
    for i, p in enumerate(points):
        fmt.pack_into(buf, i * fmt.size, *p)
    return PointCloud2(header=header, height=1, width=len(points), fields=XYZRGB_FIELDS, is_bigendian=False,
                       point_step=16, row_step=16 * len(points), is_dense=False, data=bytes(buf))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    n = args.points
    xyz = rng.normal(size=(n, 3)).astype(np.float32)
    rgb = rng.integers(0, 256, size=(n, 3), dtype=np.uint8)
    header = Header(frame_id="map")
    tuples = [(*p, c) for p, c in zip(xyz.tolist(), pack_rgb(rgb).tolist())]

    pack = best_ms(lambda: xyzrgb_to_pointcloud2(xyz, rgb, header), args.repeats)
    msg = xyzrgb_to_pointcloud2(xyz, rgb, header)
    unpack = best_ms(lambda: pointcloud2_to_xyzrgb(msg), args.repeats)
    naive = best_ms(lambda: naive_cloud(tuples, header), 1)
    assert bytes(naive_cloud(tuples[:1000], header).data) == bytes(xyzrgb_to_pointcloud2(xyz[:1000], rgb[:1000]).data)

    img = rng.integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    depth = rng.uniform(0.3, 5.0, size=(480, 640)).astype(np.float32)
    img_msg, d32, d16 = rgb_to_image(img), depth_to_image(depth, "32FC1"), depth_to_image(depth, "16UC1")
    rows = [
        ("PointCloud2 pack, 1M xyz+rgb", pack, "<= 30 ms", pack <= 30.0),
        ("PointCloud2 pack, point-by-point baseline", naive, "", None),
        ("speed-up over baseline", naive / pack, ">= 20x", naive / pack >= 20.0),
        ("PointCloud2 unpack, 1M xyz+rgb", unpack, "", None),
        ("Image rgb8 640x480 numpy -> msg", best_ms(lambda: rgb_to_image(img), args.repeats), "", None),
        ("Image rgb8 640x480 msg -> numpy", best_ms(lambda: rgb_from_image(img_msg), args.repeats), "", None),
        ("Image 32FC1 640x480 numpy -> msg", best_ms(lambda: depth_to_image(depth, "32FC1"), args.repeats), "", None),
        ("Image 32FC1 640x480 msg -> metres", best_ms(lambda: depth_from_image(d32), args.repeats), "", None),
        ("Image 16UC1 640x480 numpy -> msg", best_ms(lambda: depth_to_image(depth, "16UC1"), args.repeats), "", None),
        ("Image 16UC1 640x480 msg -> metres", best_ms(lambda: depth_from_image(d16), args.repeats), "", None),
    ]
    print(f"| conversion ({n} points; best of {args.repeats}) | measured | target | result |")
    print("|---|---|---|---|")
    for name, value, target, ok in rows:
        unit = "x" if name.startswith("speed") else " ms"
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        print(f"| {name} | {value:.1f}{unit} | {target} | {verdict} |")
    return 0 if all(ok for *_, ok in rows if ok is not None) else 1


if __name__ == "__main__":
    raise SystemExit(main())

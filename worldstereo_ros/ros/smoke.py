"""The smoke run: a synthetic RGB-D sequence, a replay_node in another process, and a subscriber here
that receives image, depth, camera_info and the camera pose over DDS and checks them against the files.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import rclpy
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import CameraInfo, Image
from tf2_msgs.msg import TFMessage

from worldstereo_ros.datasets.rgbd_folder import write_rgbd_frame
from worldstereo_ros.ros.conversions.camera_info import camera_info_to_intrinsics
from worldstereo_ros.ros.conversions.image import depth_from_image, rgb_from_image
from worldstereo_ros.ros.conversions.transforms import transform_to_matrix
from worldstereo_ros.ros.tf import TF_QOS

WIDTH, HEIGHT = 320, 240
K = np.array([[280.0, 0.0, 159.5], [0.0, 280.0, 119.5], [0.0, 0.0, 1.0]])


def synthetic_frame(k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frame ``k`` of a camera sliding 5 cm per frame to the right in front of a tilted, checkered wall.

    Returns rgb (H, W, 3) uint8, depth (H, W) float32 metres (exact for the plane), T_world_cam (4, 4).
    """
    T = np.eye(4)
    T[0, 3] = 0.05 * k
    u, v = np.meshgrid(np.arange(WIDTH), np.arange(HEIGHT))
    rays = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones_like(u, dtype=float)], axis=-1)
    # Wall n . X = d in the world, with the camera centre at (0.05 k, 0, 0) and axes aligned to the world.
    n = np.array([0.0, -0.2, 1.0]) / np.linalg.norm([0.0, -0.2, 1.0])
    d = 2.0
    depth = (d - n @ T[:3, 3]) / (rays @ n)
    world = rays * depth[..., None] + T[:3, 3]
    checker = ((np.floor(world[..., 0] / 0.2) + np.floor(world[..., 1] / 0.2)) % 2).astype(np.float32)
    rgb = np.stack([0.2 + 0.6 * checker, 0.5 + 0.3 * np.sin(3 * world[..., 0]), 0.8 - 0.5 * checker], axis=-1)
    return (np.clip(rgb, 0, 1) * 255).astype(np.uint8), depth.astype(np.float32), T


def run_smoke(out: str | os.PathLike, frames: int = 5, timeout_s: float = 30.0) -> int:
    out = Path(out)
    folder = out / "sequence"
    truth = [synthetic_frame(k) for k in range(frames)]
    for k, (rgb, depth, T) in enumerate(truth):
        write_rgbd_frame(folder, k, rgb, depth, T, K)
    print(f"wrote {frames} synthetic RGB-D frames to {folder}")

    cmd = [sys.executable, "-m", "worldstereo_ros.ros.replay_node", "--ros-args", "-p", f"folder:={folder}",
           "-p", f"allowed_roots:=['{folder}']", "-p", "rate_hz:=5.0", "-p", "loop:=true"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    rclpy.init()
    node = rclpy.create_node("worldstereo_smoke")
    got: dict[str, object] = {}
    node.create_subscription(Image, "image", lambda m: got.setdefault("image", m), qos_profile_sensor_data)
    node.create_subscription(Image, "depth", lambda m: got.setdefault("depth", m), qos_profile_sensor_data)
    node.create_subscription(CameraInfo, "camera_info", lambda m: got.setdefault("camera_info", m),
                             qos_profile_sensor_data)
    node.create_subscription(TFMessage, "/tf", lambda m: got.setdefault("tf", m), TF_QOS)
    t0 = time.monotonic()
    try:
        while len(got) < 4 and time.monotonic() - t0 < timeout_s and proc.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        proc.terminate()
        log, _ = proc.communicate(timeout=10)
    if len(got) < 4:
        print(f"FAILED: received only {sorted(got)} in {timeout_s} s; replay_node said:\n{log}", file=sys.stderr)
        return 1
    elapsed = time.monotonic() - t0
    rgb = rgb_from_image(got["image"])
    depth = depth_from_image(got["depth"])
    intr = camera_info_to_intrinsics(got["camera_info"])
    T = transform_to_matrix(got["tf"].transforms[0].transform)
    # Which frame arrived depends on timing; its pose says which one it was.
    k = int(round(T[0, 3] / 0.05))
    rgb_true, depth_true, T_true = truth[k]
    checks = {
        "image rgb8 equals frame pixels": np.array_equal(rgb, rgb_true),
        "depth 16UC1 within 0.5 mm": float(np.abs(depth - depth_true).max()) <= 5e-4,
        "camera_info K equals intrinsics": np.allclose(intr.K, K),
        "tf pose equals frame pose": np.allclose(T, T_true, atol=1e-9),
        "stamps agree": got["image"].header.stamp == got["depth"].header.stamp,
    }
    preview = out / "received.png"
    depth_vis = cv2.applyColorMap((np.clip(depth / 4.0, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
    cv2.imwrite(str(preview), np.concatenate([cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), depth_vis], axis=1))
    print(f"received image {rgb.shape[1]}x{rgb.shape[0]}, depth, camera_info and /tf "
          f"({got['tf'].transforms[0].header.frame_id} -> {got['tf'].transforms[0].child_frame_id}) "
          f"of frame {k} from replay_node over DDS in {elapsed:.2f} s")
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    print(f"preview of what arrived: {preview}")
    return 0 if all(checks.values()) else 1

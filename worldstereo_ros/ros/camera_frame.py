"""One synced camera frame (image, depth or none, camera_info) decoded to numpy, with the checks every node applies.

No rclpy import: the messages arrive as plain objects, so the checks are tested without ROS.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from worldstereo_ros.errors import InputError
from worldstereo_ros.ros.conversions.camera_info import Intrinsics, camera_info_to_intrinsics
from worldstereo_ros.ros.conversions.image import compressed_to_numpy, depth_from_image, rgb_from_image
from worldstereo_ros.ros.frame_sync import SyncedFrame


@dataclass
class DecodedFrame:
    """A camera frame as arrays.

    Attributes:
        rgb: (H, W, 3) colour image as the conversion returns it (uint8 for 8-bit encodings).
        depth: (H, W) float32 metres, 0 = unknown; None for an RGB-only camera.
        info: the rectified intrinsics (no distortion), of the same size as ``rgb``.
    """

    rgb: np.ndarray
    depth: np.ndarray | None
    info: Intrinsics


def decode_frame(frame: SyncedFrame, compressed: bool = False) -> DecodedFrame:
    """Decode and check one synced frame.

    Args:
        frame: image (sensor_msgs/Image, or CompressedImage when ``compressed``), depth (Image or None) and
            camera_info.
    Raises:
        WorldStereoError (InputError / ConversionError) naming the field: distortion (the nodes need rectified
        images), a camera_info or depth of another size than the image, or a conversion failure.
    """
    rgb = compressed_to_numpy(frame.image) if compressed else rgb_from_image(frame.image)
    info = camera_info_to_intrinsics(frame.camera_info)
    if info.is_distorted:
        raise InputError("camera_info.d", "distortion coefficients are not zero: publish the rectified image "
                                          "(image_rect) and its camera_info")
    if (info.width, info.height) != (rgb.shape[1], rgb.shape[0]):
        raise InputError("camera_info", f"size {info.width}x{info.height} differs from the image's "
                                        f"{rgb.shape[1]}x{rgb.shape[0]}")
    if frame.depth is None:
        return DecodedFrame(rgb, None, info)
    depth = depth_from_image(frame.depth)
    if depth.shape != rgb.shape[:2]:
        raise InputError("depth", f"size {depth.shape[1]}x{depth.shape[0]} differs from the image's "
                                  f"{rgb.shape[1]}x{rgb.shape[0]} (register depth to colour first)")
    return DecodedFrame(rgb, depth, info)

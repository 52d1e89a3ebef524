"""One RGB-D frame (image, depth, camera_info messages) as checked numpy arrays, without rclpy.

Both the imagination node and the stereo node consume such triples and must refuse the same things: a
distorted camera (the library assumes rectified pinhole images) and sizes that disagree.
"""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from worldstereo_ros.errors import InputError
from worldstereo_ros.ros.conversions.camera_info import camera_info_to_intrinsics
from worldstereo_ros.ros.conversions.image import compressed_to_numpy, depth_from_image, rgb_from_image


def rgbd_from_messages(image: Image | CompressedImage, depth: Image | None, camera_info: CameraInfo,
                       compressed: bool = False) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(rgb, depth, K) of one frame: rgb (H, W, 3) uint8, depth (H, W) float32 metres (0 = unknown; None for an
    RGB-only camera) and K (3, 3) float64 pixels, all checked to describe the same rectified camera.

    Args:
        image: sensor_msgs/Image, or a CompressedImage (jpeg/png) when ``compressed``.
        depth: sensor_msgs/Image, 16UC1/mono16 millimetres or 32FC1 metres, registered to the colour image;
            None when the camera gives no depth.
        camera_info: the colour camera's calibration; its distortion must be zero.
    Raises:
        InputError / ConversionError naming the field: distortion, camera_info or depth size unlike the image's
        (checked in that order), or a message the converters refuse.
    """
    rgb = compressed_to_numpy(image) if compressed else rgb_from_image(image)
    info = camera_info_to_intrinsics(camera_info)
    if info.is_distorted:
        raise InputError("camera_info.d", "distortion coefficients are not zero: publish the rectified image "
                                          "(image_rect) and its camera_info")
    if (info.width, info.height) != (rgb.shape[1], rgb.shape[0]):
        raise InputError("camera_info", f"size {info.width}x{info.height} differs from the image's "
                                        f"{rgb.shape[1]}x{rgb.shape[0]}")
    if depth is None:
        return rgb, None, info.K
    depth_m = depth_from_image(depth)
    if depth_m.shape != rgb.shape[:2]:
        raise InputError("depth", f"size {depth_m.shape[1]}x{depth_m.shape[0]} differs from the image's "
                                  f"{rgb.shape[1]}x{rgb.shape[0]} (register depth to colour first)")
    return rgb, depth_m, info.K

"""TSDF fusion of RGB-D frames with Open3D's tensor ``VoxelBlockGrid``: the one implementation behind the mesh
export (:mod:`worldstereo_ros.io.mesh`) and the bench's reference surfaces
(:func:`worldstereo_ros.evaluation.reconstruction.fuse_reference`).

Each frame's depth (float32 metres, 0 = unknown) is fused at its known pose into a truncated signed distance
field of hashed voxel blocks, with colours; the zero level comes out as surface points or a triangle mesh.
Fusing frames (rather than meshing a point cloud) averages depth noise over views and leaves free space empty.

Half-pixel fix: Open3D looks a voxel's depth up at the pixel its projection *truncates* to, not the nearest
one; half a pixel off, which moves slanted surfaces along their depth gradient (measured: 5 mm on a 30-degree
plane at 120 px focal length). Integration therefore uses the principal point moved by +0.5 px, which turns
the truncation into a rounding. Pixel centres are at integer coordinates (the project's convention).
"""

from __future__ import annotations

import numpy as np
import open3d as o3d
import open3d.core as o3c

from worldstereo_ros.errors import InputError
from worldstereo_ros.validation import check_int, check_positive


class TsdfFusion:
    """A TSDF volume frames are fused into one by one (module doc).

    Args:
        voxel_size_m: voxel edge, metres.
        sdf_trunc_m: truncation distance, metres (>= one voxel).
        depth_max_m: depth beyond this is ignored, metres (far depth is the noisiest).
        block_resolution: voxels per block edge.
        block_count: initial number of blocks to allocate; on CPU the hash map grows when full, so this only
            sizes the first allocation (each block's voxels are allocated up front: keep it small); on CUDA it
            must cover the scene.
        device: Open3D device, e.g. "CPU:0" or "CUDA:0".

    The grid is allocated at the first frame with usable depth, so bad input fails before that allocation.
    """

    def __init__(self, voxel_size_m: float, sdf_trunc_m: float, depth_max_m: float, block_resolution: int = 16,
                 block_count: int = 4000, device: str = "CPU:0") -> None:
        self.voxel_size_m = check_positive("voxel_size_m", voxel_size_m)
        self.sdf_trunc_m = check_positive("sdf_trunc_m", sdf_trunc_m)
        if self.sdf_trunc_m < self.voxel_size_m:
            raise InputError("sdf_trunc_m", f"expected >= voxel_size_m ({self.voxel_size_m}), got {sdf_trunc_m}")
        self.depth_max_m = check_positive("depth_max_m", depth_max_m)
        check_int("block_resolution", block_resolution, 1)
        check_int("block_count", block_count, 1)
        try:
            self.device = o3c.Device(device)
        except (RuntimeError, ValueError, TypeError) as exc:
            raise InputError("device", f"not an Open3D device: {device!r} ({exc})") from None
        self.block_resolution, self.block_count = int(block_resolution), int(block_count)
        self.grid = None
        #: frames whose depth reached the volume
        self.integrated = 0

    def integrate(self, depth: np.ndarray, colour: np.ndarray, K: np.ndarray, T_cam_world: np.ndarray) -> bool:
        """Fuse one frame; False when it holds no depth within ``depth_max_m`` (nothing to fuse).

        Args:
            depth: (H, W) float32 metres, 0 = unknown. colour: (H, W, 3) float32 in [0, 1].
            K: (3, 3) float64 intrinsics. T_cam_world: (4, 4) float64 world-to-camera (OpenCV optical frame).
        """
        depth = np.ascontiguousarray(depth, dtype=np.float32)
        if not ((depth > 0) & (depth <= self.depth_max_m)).any():
            return False  # nothing to integrate (and Open3D would get an empty block list)
        if self.grid is None:
            self.grid = o3d.t.geometry.VoxelBlockGrid(
                attr_names=("tsdf", "weight", "color"), attr_dtypes=(o3c.float32, o3c.float32, o3c.float32),
                attr_channels=((1), (1), (3)), voxel_size=self.voxel_size_m,
                block_resolution=self.block_resolution, block_count=self.block_count, device=self.device)
        trunc_voxels = self.sdf_trunc_m / self.voxel_size_m  # Open3D takes the truncation in voxels
        depth_img = o3d.t.geometry.Image(o3c.Tensor(depth)).to(self.device)
        colour_img = o3d.t.geometry.Image(o3c.Tensor(np.ascontiguousarray(colour, dtype=np.float32))).to(self.device)
        # camera matrices stay float64 on the CPU, as Open3D expects
        K = np.asarray(K, dtype=np.float64)
        extrinsic = o3c.Tensor(np.asarray(T_cam_world, dtype=np.float64))
        blocks = self.grid.compute_unique_block_coordinates(depth_img, o3c.Tensor(K), extrinsic, 1.0,
                                                            self.depth_max_m, trunc_voxels)
        if blocks.shape[0] == 0:
            return False
        K_round = K.copy()
        K_round[:2, 2] += 0.5  # the half-pixel fix (module doc)
        self.grid.integrate(blocks, depth_img, colour_img, o3c.Tensor(K_round), extrinsic, 1.0, self.depth_max_m,
                            trunc_voxels)
        self.integrated += 1
        return True

    def surface_points(self, min_observations: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Zero-crossing points of voxels fused from at least ``min_observations`` frames: (N, 3) float32 world
        metres and (N, 3) float32 colours in [0, 1]; empty arrays when nothing was fused."""
        if self.grid is None:
            return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32)
        # each integration adds 1 to a voxel's weight and Open3D keeps weights strictly above the threshold
        cloud = self.grid.extract_point_cloud(weight_threshold=min_observations - 0.5)
        if "positions" not in cloud.point or cloud.point.positions.shape[0] == 0:
            return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32)
        xyz = cloud.point.positions.cpu().numpy().astype(np.float32)
        rgb = cloud.point.colors.cpu().numpy().astype(np.float32)
        return xyz, np.clip(rgb, 0.0, 1.0)  # weighted colour averages drift a hair past 1.0 in float32

    def triangle_mesh(self, min_weight: float = 1.0) -> o3d.geometry.TriangleMesh:
        """Marching-cubes mesh (legacy Open3D, vertex colours, world frame) of voxels with weight >= ``min_weight``;
        an empty mesh when nothing was fused."""
        if self.grid is None:
            return o3d.geometry.TriangleMesh()
        return self.grid.extract_triangle_mesh(weight_threshold=float(min_weight)).to_legacy()

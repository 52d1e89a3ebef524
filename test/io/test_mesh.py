"""TSDF mesh of RGB-D frames: a fronto-parallel plane gives a flat mesh at the right depth."""

from __future__ import annotations

import numpy as np
import open3d as o3d

from worldstereo_ros.io.mesh import tsdf_mesh, write_mesh


def test_plane_at_one_metre_becomes_a_flat_mesh_there(tmp_path):
    h, w = 60, 80
    K = np.array([[60.0, 0, 39.5], [0, 60.0, 29.5], [0, 0, 1]])
    rgb = np.full((h, w, 3), 0.7, np.float32)
    depth = np.ones((h, w), np.float32)
    T = np.eye(4)
    T[:3, 3] = (0.1, -0.2, 0.3)
    mesh = tsdf_mesh([(rgb, depth, K, T)] * 2, voxel_size_m=0.02)
    v = np.asarray(mesh.vertices)
    assert len(mesh.triangles) > 100
    np.testing.assert_allclose(v[:, 2], 1.3, atol=0.011)  # plane z = 1 m in the camera, camera at z = 0.3
    assert np.allclose(np.asarray(mesh.vertex_colors), 0.7, atol=0.02)
    ply, obj = write_mesh(mesh, tmp_path / "mesh")
    back = o3d.io.read_triangle_mesh(str(obj))
    assert len(back.triangles) == len(mesh.triangles)
    assert len(o3d.io.read_triangle_mesh(str(ply)).triangles) == len(mesh.triangles)


def test_no_valid_depth_gives_an_empty_mesh(tmp_path):
    K = np.array([[60.0, 0, 39.5], [0, 60.0, 29.5], [0, 0, 1]])
    mesh = tsdf_mesh([(np.zeros((60, 80, 3), np.float32), np.zeros((60, 80), np.float32), K, np.eye(4))])
    assert len(mesh.triangles) == 0
    ply, obj = write_mesh(mesh, tmp_path / "empty")
    assert ply.is_file() and obj.is_file()


def test_mesh_of_a_slanted_plane_is_not_shifted():
    # issue 15: the mesh export's TSDF lacked the half-pixel fix of the bench's, shifting slanted surfaces
    # ~5 mm along their depth gradient (30 degrees, 120 px focal length); both now share geometry.tsdf
    w, h, f = 160, 120, 120.0
    K = np.array([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1.0]])
    n = np.array([np.sin(np.radians(30)), 0.0, np.cos(np.radians(30))])  # plane n . X = d, camera frame
    d = 1.0
    u, v = np.meshgrid(np.arange(w), np.arange(h))
    rays = np.stack([(u - K[0, 2]) / f, (v - K[1, 2]) / f, np.ones_like(u, float)], -1)
    depth = (d / (rays @ n)).astype(np.float32)
    rgb = np.full((h, w, 3), 0.5, np.float32)
    mesh = tsdf_mesh([(rgb, depth, K, np.eye(4))] * 3, voxel_size_m=0.005, trunc_voxels=4.0, depth_max_m=3.0)
    xyz = np.asarray(mesh.vertices)
    assert len(xyz) > 1000
    signed = xyz @ n - d
    assert abs(float(np.median(signed))) < 0.0015, f"median offset {1e3 * np.median(signed):.2f} mm"

"""geometry/rotations.euler_to_matrix: the one numpy-side Euler conversion (issue 15)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry.frames import T_LINK_OPTICAL
from worldstereo_ros.geometry.rotations import euler_to_matrix


@pytest.mark.parametrize("yaw_deg, pitch_deg", [(0, 0), (90, 0), (37, -23), (180, 45), (270, 0), (0, -90)])
def test_rotating_yx_matches_scipy_intrinsic(yaw_deg, pitch_deg):
    # scipy as an independent reference: upper-case "YX" is intrinsic yaw about y, then pitch about the new x
    expected = Rotation.from_euler("YX", [yaw_deg, pitch_deg], degrees=True).as_matrix()
    R = euler_to_matrix((np.radians(yaw_deg), np.radians(pitch_deg), 0.0), "ryxz")
    np.testing.assert_allclose(R, expected, atol=1e-12)


def test_static_xyz_is_ros_roll_pitch_yaw():
    # REP 103: optical axes are rpy(-pi/2, 0, -pi/2) from the body frame: optical z (forward) = body x
    R = euler_to_matrix((-np.pi / 2, 0.0, -np.pi / 2), "sxyz")
    np.testing.assert_allclose(R @ [0, 0, 1], [1, 0, 0], atol=1e-12)
    np.testing.assert_allclose(R @ [1, 0, 0], [0, -1, 0], atol=1e-12)
    np.testing.assert_allclose(T_LINK_OPTICAL[:3, :3], R, atol=1e-12)


def test_bad_angles_and_axes_name_the_field():
    with pytest.raises(InputError, match="angles_rad"):
        euler_to_matrix((0.0, 0.0), "sxyz")
    with pytest.raises(InputError, match="angles_rad"):
        euler_to_matrix((0.0, np.nan, 0.0), "sxyz")
    with pytest.raises(InputError, match="axes"):
        euler_to_matrix((0.0, 0.0, 0.0), "yx")

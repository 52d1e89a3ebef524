"""Camera inputs of the WorldStereo model: Plücker rays, the two camera normalisations and ``camera_qt`` tokens.

Conventions: poses are world-to-camera (``w2c``, the inverse of the project's ``T_world_cam``) in OpenCV optical
axes, float32 (4, 4) per frame; intrinsics (3, 3) in pixels. The released model was trained on these exact inputs,
including two quirks reproduced here on purpose: the pixel grid used for rays is ``x = u - 0.5``, ``y = v + 0.5``
(asymmetric), and a camera at the normalised origin keeps the raw ``camera_scale`` as its scale factor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from worldstereo_ros.errors import InputError
from worldstereo_ros.geometry.poses import matrix_to_quat_xyzw


def _check_poses(name: str, w2c: torch.Tensor) -> None:
    if w2c.ndim != 3 or tuple(w2c.shape[-2:]) != (4, 4) or w2c.shape[0] < 1:
        raise InputError(name, f"expected shape (F, 4, 4) with F >= 1, got {tuple(w2c.shape)}")


def _recentre_and_scale(c2w: torch.Tensor, centre_from: torch.Tensor,
                        camera_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Shift camera centres by the inlier mean of ``centre_from`` and scale so the first camera is at ``camera_scale``.

    ``centre_from``: the (M, 4, 4) camera-to-world poses whose centres define the origin (the targets); the first
    row of ``c2w`` must be the first of them. Inliers: centres within 10 x the 97th percentile of the distance to
    the median centre (one far outlier must not drag the origin). Returns (w2c, c2w), both rescaled.
    """
    centres = centre_from[:, :3, 3]
    dist = torch.linalg.norm(centres - centres.median(dim=0, keepdim=True).values, dim=-1)
    inliers = dist <= torch.clamp(torch.quantile(dist, 0.97) * 10, max=1e6)
    c2w = c2w.clone()
    c2w[:, :3, 3] -= centres[inliers].mean(dim=0, keepdim=True)
    w2c = torch.linalg.inv(c2w)
    first = torch.linalg.norm(c2w[0, :3, 3])
    # A first camera at the centre has no length to normalise by; the release then scales by camera_scale itself.
    factor = camera_scale if bool(torch.isclose(first, first.new_zeros(()), atol=1e-5)) else camera_scale / first
    w2c[:, :3, 3] *= factor
    c2w[:, :3, 3] *= factor
    return w2c, c2w


def camera_center_normalization(w2c: torch.Tensor, camera_scale: float = 2.0) -> torch.Tensor:
    """Express a trajectory relative to its first camera, centred and scaled (the Plücker rays' normalisation).

    Args:
        w2c: (F, 4, 4) world-to-camera poses.
        camera_scale: distance of the first camera from the centre after scaling (unitless).

    Returns:
        (F, 4, 4) float32 normalised world-to-camera poses (the first camera has identity rotation).
    """
    _check_poses("w2c", w2c)
    w2c = w2c.float()
    w2c = w2c @ torch.linalg.inv(w2c[0:1])
    c2w = torch.linalg.inv(w2c)
    w2c, _ = _recentre_and_scale(c2w, c2w, camera_scale)
    return w2c


def unified_camera_normalization(w2c: torch.Tensor, w2c_ref: torch.Tensor,
                                 camera_scale: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalise targets and references together; centre and scale come from the targets only.

    Args:
        w2c: (F, 4, 4) target world-to-camera poses.
        w2c_ref: (R, 4, 4) reference world-to-camera poses.
        camera_scale: distance of the first target camera from the centre.

    Returns:
        ((F, 4, 4), (R, 4, 4)) float32 normalised poses, relative to the first target camera.
    """
    _check_poses("w2c", w2c)
    _check_poses("w2c_ref", w2c_ref)
    combined = torch.cat([w2c.float(), w2c_ref.float()], dim=0)
    combined = combined @ torch.linalg.inv(combined[0:1])
    c2w = torch.linalg.inv(combined)
    n = w2c.shape[0]
    out, _ = _recentre_and_scale(c2w, c2w[:n], camera_scale)
    return out[:n], out[n:]


def plucker_rays(K: torch.Tensor, w2c: torch.Tensor, height: int, width: int, normalize: bool = True,
                 camera_scale: float = 2.0) -> torch.Tensor:
    """Plücker ray embedding ``[d, o x d]`` of every pixel of every frame.

    Args:
        K: (F, 3, 3) intrinsics in pixels (of the ``height`` x ``width`` image).
        w2c: (F, 4, 4) world-to-camera poses.
        height, width: image size in pixels.
        normalize: apply :func:`camera_center_normalization` first (as the model expects).
        camera_scale: see :func:`camera_center_normalization`.

    Returns:
        (1, 6, F, height, width) float32: unit ray directions (world frame) then moments ``o x d``.
    """
    _check_poses("w2c", w2c)
    if K.shape != (w2c.shape[0], 3, 3):
        raise InputError("K", f"expected shape ({w2c.shape[0]}, 3, 3), got {tuple(K.shape)}")
    if normalize:
        w2c = camera_center_normalization(w2c, camera_scale)
    K = K.float()
    c2w = torch.linalg.inv(w2c.float())
    v, u = torch.meshgrid(torch.arange(height, dtype=torch.float32, device=K.device),
                          torch.arange(width, dtype=torch.float32, device=K.device), indexing="ij")
    # The release's pixel grid: half a pixel left in x but half a pixel down in y (kept: the weights learned it).
    pix = torch.stack([u - 0.5, v + 0.5, torch.ones_like(u)], dim=-1).reshape(1, -1, 3)
    cam_dirs = pix @ torch.linalg.inv(K).transpose(-1, -2)
    dirs = F.normalize(cam_dirs @ c2w[:, :3, :3].transpose(-1, -2), dim=-1)  # (F, HW, 3)
    origins = c2w[:, None, :3, 3].expand_as(dirs)
    emb = torch.cat([dirs, torch.cross(origins, dirs, dim=-1)], dim=-1)  # (F, HW, 6)
    emb = emb.reshape(w2c.shape[0], height, width, 6).permute(3, 0, 1, 2)[None]
    if not torch.isfinite(emb).all():
        raise InputError("w2c", "camera poses give non-finite Plücker rays (singular pose or intrinsics?)")
    return emb.contiguous()


def camera_qt(w2c: torch.Tensor) -> torch.Tensor:
    """Camera tokens: (F, 7) float32 ``[qw, qx, qy, qz, tx, ty, tz]`` of normalised w2c poses, ``qw >= 0``.

    Args:
        w2c: (F, 4, 4) world-to-camera poses, already normalised (:func:`unified_camera_normalization`).
    """
    _check_poses("w2c", w2c)
    q_xyzw = matrix_to_quat_xyzw(w2c[:, :3, :3].float())
    q_wxyz = torch.cat([q_xyzw[:, 3:], q_xyzw[:, :3]], dim=-1)
    q_wxyz = torch.where(q_wxyz[:, :1] < 0, -q_wxyz, q_wxyz)
    return torch.cat([q_wxyz, w2c[:, :3, 3].float()], dim=-1)


def target_and_reference_tokens(w2c: torch.Tensor, w2c_ref: torch.Tensor,
                                camera_scale: float = 2.0) -> tuple[torch.Tensor, torch.Tensor]:
    """``camera_qt`` (F, 7) and ``camera_qt_ref`` (R, 7) after :func:`unified_camera_normalization`."""
    tgt, ref = unified_camera_normalization(w2c, w2c_ref, camera_scale)
    return camera_qt(tgt), camera_qt(ref)

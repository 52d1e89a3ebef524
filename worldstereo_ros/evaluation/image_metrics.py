"""Image comparison metrics: PSNR, SSIM (scikit-image) and a sharpness ratio, each optionally masked.

PSNR rewards blur (a blurred fill has a lower squared error than a sharp but shifted one), so every
comparison also reports :func:`sharpness_ratio`: the mean gradient magnitude of the synthesised image
over that of the real one on the same pixels (1 = as sharp, < 1 = blurrier).

Images are (H, W, 3) float arrays in [0, 1]; masks are (H, W) bool.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
from skimage.metrics import structural_similarity

from worldstereo_ros.errors import InputError


def _pair(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    pred = np.asarray(pred, dtype=np.float32)
    target = np.asarray(target, dtype=np.float32)
    if pred.ndim != 3 or pred.shape[2] != 3:
        raise InputError("pred", f"expected shape (H, W, 3), got {pred.shape}")
    if target.shape != pred.shape:
        raise InputError("target", f"expected shape {pred.shape} to match pred, got {target.shape}")
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != pred.shape[:2]:
            raise InputError("mask", f"expected shape {pred.shape[:2]}, got {mask.shape}")
    return pred, target, mask


def psnr(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Peak signal-to-noise ratio in dB (peak 1.0) over all pixels or the masked ones; inf when equal,
    nan for an empty mask."""
    pred, target, mask = _pair(pred, target, mask)
    err = ((pred - target) ** 2).mean(axis=2)
    if mask is not None:
        if not mask.any():
            return math.nan
        err = err[mask]
    mse = float(err.mean())
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def ssim(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Structural similarity (scikit-image, 7x7 windows, data range 1) averaged over all pixels or the
    masked ones (the SSIM map is computed on the whole image, then averaged); nan for an empty mask."""
    pred, target, mask = _pair(pred, target, mask)
    _, full = structural_similarity(pred, target, channel_axis=2, data_range=1.0, full=True)
    full = full.mean(axis=2)
    if mask is not None:
        if not mask.any():
            return math.nan
        return float(full[mask].mean())
    return float(full.mean())


def gradient_energy(image: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean Sobel gradient magnitude of the grey image over all pixels or the masked ones."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim != 3 or image.shape[2] != 3:
        raise InputError("image", f"expected shape (H, W, 3), got {image.shape}")
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.sqrt(gx * gx + gy * gy)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != grey.shape:
            raise InputError("mask", f"expected shape {grey.shape}, got {mask.shape}")
        if not mask.any():
            return math.nan
        mag = mag[mask]
    return float(mag.mean())


def sharpness_ratio(pred: np.ndarray, target: np.ndarray, mask: np.ndarray | None = None) -> float:
    """gradient_energy(pred) / gradient_energy(target) on the same pixels (1 = as sharp as the real image)."""
    pred, target, mask = _pair(pred, target, mask)
    real = gradient_energy(target, mask)
    if not real > 0:
        return math.nan
    return gradient_energy(pred, mask) / real

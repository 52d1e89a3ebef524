"""PSNR, SSIM and the sharpness ratio."""

import math

import cv2
import numpy as np
import pytest

from worldstereo_ros.errors import InputError
from worldstereo_ros.evaluation.image_metrics import gradient_energy, psnr, sharpness_ratio, ssim


def _image(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.random((12, 16, 3), dtype=np.float32), (64, 48), interpolation=cv2.INTER_NEAREST)
    return img


def test_identical_images():
    img = _image()
    assert psnr(img, img) == math.inf
    assert ssim(img, img) == pytest.approx(1.0)
    assert sharpness_ratio(img, img) == pytest.approx(1.0)


def test_known_mse_and_masks():
    a = np.zeros((4, 4, 3), np.float32)
    b = a.copy()
    b[:2] = 0.1  # mse 0.01 on the top half
    assert psnr(b, a) == pytest.approx(10 * math.log10(1 / 0.005))
    top = np.zeros((4, 4), bool)
    top[:2] = True
    assert psnr(b, a, top) == pytest.approx(20.0)
    assert psnr(b, a, ~top) == math.inf
    assert math.isnan(psnr(b, a, np.zeros((4, 4), bool)))


def test_blur_lowers_sharpness_and_ssim():
    img = _image(1)
    blurred = cv2.GaussianBlur(img, (0, 0), 2.0)
    assert sharpness_ratio(blurred, img) < 0.6
    assert ssim(blurred, img) < 0.9
    mask = np.zeros(img.shape[:2], bool)
    mask[10:30, 10:40] = True
    assert gradient_energy(img, mask) > gradient_energy(blurred, mask)


def test_bad_shapes_name_the_field():
    img = _image()
    with pytest.raises(InputError, match="target"):
        psnr(img, img[:10])
    with pytest.raises(InputError, match="mask"):
        ssim(img, img, np.ones((3, 3), bool))
    with pytest.raises(InputError, match="pred"):
        psnr(img[..., 0], img[..., 0])

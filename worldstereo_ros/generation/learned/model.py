"""FillNet: a compact U-Net that imagines rgb, depth and a confidence for the hole pixels of a view.

Layout (input (B, C, H, W) with H, W multiples of 32, C = len(conditioning.INPUT_CHANNELS)):

* the full-resolution input is folded into a 1/4-resolution tensor (pixel unshuffle, no information lost)
  and passed through a 4-level U-Net (1/4 ... 1/32) whose bottleneck adds dilated convolutions, so the
  receptive field spans the whole 640 x 480 frame: holes at large view offsets cover half of it;
* a full-resolution refinement sees the upsampled features together with the raw input, so edges and
  texture next to the hole boundary stay sharp.

Outputs (:class:`FillOutput`): rgb as a residual on the Telea prior carried in the input, normalised
inverse depth (``scale / depth``, see :mod:`.conditioning`) and a confidence logit. Observed pixels are
never changed: :meth:`FillNet.fill` composes the prediction into the hole pixels only.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from worldstereo_ros.errors import InputError
from worldstereo_ros.generation.learned.conditioning import INPUT_CHANNELS

_TELEA = slice(5, 8)
_HOLE = 3
_COND_RGB = slice(0, 3)


@dataclass
class FillOutput:
    """Per-pixel predictions, (B, ., H, W) float32.

    Attributes:
        rgb: (B, 3, H, W) in [0, 1]: observed pixels unchanged, holes imagined.
        inv_depth: (B, 1, H, W) normalised inverse depth ``scale / depth`` (>= 0) for every pixel.
        confidence: (B, 1, H, W) in [0, 1], probability that the imagined depth is within 5 %.
        confidence_logit: (B, 1, H, W) the logit of ``confidence`` (for the loss).
    """

    rgb: torch.Tensor
    inv_depth: torch.Tensor
    confidence: torch.Tensor
    confidence_logit: torch.Tensor


def _block(cin: int, cout: int, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=dilation, dilation=dilation), nn.LeakyReLU(0.1, inplace=True),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.LeakyReLU(0.1, inplace=True))


def _down(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=2, padding=1), nn.LeakyReLU(0.1, inplace=True),
                         _block(cout, cout))


class FillNet(nn.Module):
    """The fill network (module doc).

    Args:
        widths: channels at 1/4, 1/8, 1/16 and 1/32 resolution.
        fine: channels of the full-resolution refinement.
    """

    MULTIPLE = 32

    def __init__(self, widths: tuple[int, int, int, int] = (32, 48, 64, 96), fine: int = 16) -> None:
        super().__init__()
        cin = len(INPUT_CHANNELS)
        w0, w1, w2, w3 = widths
        self.widths, self.fine = tuple(widths), int(fine)
        self.fold = nn.PixelUnshuffle(4)
        # a 1x1 mix of the folded 4x4 patches first: a 3x3 conv on 16 x C channels would cost most of the net
        self.stem = nn.Sequential(nn.Conv2d(cin * 16, w0, 1), nn.LeakyReLU(0.1, inplace=True),
                                  nn.Conv2d(w0, w0, 3, padding=1), nn.LeakyReLU(0.1, inplace=True))
        self.down1 = _down(w0, w1)
        self.down2 = _down(w1, w2)
        self.down3 = _down(w2, w3)
        self.context = nn.Sequential(_block(w3, w3, dilation=2), _block(w3, w3, dilation=4))
        self.up2 = _block(w3 + w2, w2)
        self.up1 = _block(w2 + w1, w1)
        self.up0 = _block(w1 + w0, w0)
        self.to_fine = nn.Conv2d(w0, fine, 1)
        self.refine = nn.Sequential(nn.Conv2d(fine + cin, fine, 3, padding=1), nn.LeakyReLU(0.1, inplace=True),
                                    nn.Conv2d(fine, 5, 3, padding=1))

    def forward(self, x: torch.Tensor) -> FillOutput:
        """x: (B, C, H, W) float32 input (``conditioning.build_input``), H and W multiples of 32."""
        if x.ndim != 4 or x.shape[1] != len(INPUT_CHANNELS):
            raise InputError("x", f"expected shape (B, {len(INPUT_CHANNELS)}, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % self.MULTIPLE or w % self.MULTIPLE:
            raise InputError("x", f"height and width must be multiples of {self.MULTIPLE}, got {h} x {w}")
        e0 = self.stem(self.fold(x))
        e1 = self.down1(e0)
        e2 = self.down2(e1)
        e3 = self.context(self.down3(e2))
        d2 = self.up2(torch.cat([F.interpolate(e3, size=e2.shape[-2:], mode="bilinear", align_corners=False), e2], 1))
        d1 = self.up1(torch.cat([F.interpolate(d2, size=e1.shape[-2:], mode="bilinear", align_corners=False), e1], 1))
        d0 = self.up0(torch.cat([F.interpolate(d1, size=e0.shape[-2:], mode="bilinear", align_corners=False), e0], 1))
        f = F.interpolate(self.to_fine(d0), size=(h, w), mode="bilinear", align_corners=False)
        out = self.refine(torch.cat([F.leaky_relu(f, 0.1), x], 1))
        hole = x[:, _HOLE:_HOLE + 1]
        imagined = (x[:, _TELEA] + out[:, :3]).clamp(0.0, 1.0)
        rgb = torch.where(hole > 0.5, imagined, x[:, _COND_RGB])
        logit = out[:, 4:5]
        return FillOutput(rgb=rgb, inv_depth=F.softplus(out[:, 3:4]), confidence=torch.sigmoid(logit),
                          confidence_logit=logit)

    def config(self) -> dict[str, str]:
        """Architecture hyper-parameters, stored in the safetensors metadata."""
        return {"widths": ",".join(str(v) for v in self.widths), "fine": str(self.fine),
                "inputs": ",".join(INPUT_CHANNELS)}


def pad_to_multiple(x: torch.Tensor, multiple: int = FillNet.MULTIPLE) -> tuple[torch.Tensor, tuple[int, int]]:
    """Replicate-pad (B, C, H, W) on the bottom/right to multiples of ``multiple``; returns the padding."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, (ph, pw)


def clamp_to_support(depth: torch.Tensor, observed: torch.Tensor, window_px: int = 65
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Clamp imagined depth to the range observed in each pixel's neighbourhood.

    Args:
        depth: (B, 1, H, W) metres, imagined. observed: (B, 1, H, W) metres of the memories, 0 = unknown.
        window_px: side of the square neighbourhood, pixels (odd).
    Returns:
        the clamped depth, and supported (B, 1, H, W) bool: False where no observation lies in the window
        (there the depth is left unclamped and must not be trusted).
    """
    # computed on a 4x coarser grid: a full-resolution 65 x 65 max filter would cost more than the network
    h, w = depth.shape[-2:]
    known = observed > 0
    hi = F.max_pool2d(torch.where(known, observed, 0.0), 4, ceil_mode=True)
    lo = -F.max_pool2d(torch.where(known, -observed, -1e9), 4, ceil_mode=True)
    k = max(1, window_px // 4) | 1
    hi = F.max_pool2d(hi, k, stride=1, padding=k // 2)
    lo = -F.max_pool2d(-lo, k, stride=1, padding=k // 2)
    hi = F.interpolate(hi, size=(h, w), mode="nearest")
    lo = F.interpolate(lo, size=(h, w), mode="nearest")
    supported = hi > 0
    clamped = torch.where(supported, torch.minimum(torch.maximum(depth, lo), hi), depth)
    return clamped, supported

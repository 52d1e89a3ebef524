"""FillNet: a compact U-Net that imagines rgb, depth and a confidence for the hole pixels of a view.

Layout (input (B, C, H, W) with H, W multiples of 32, C = len(conditioning.INPUT_CHANNELS)):

* the full-resolution input is folded into a 1/4-resolution tensor (pixel unshuffle, no information lost)
  and passed through a 4-level U-Net (1/4 ... 1/32) whose bottleneck adds dilated convolutions, so the
  receptive field spans the whole 640 x 480 frame: holes at large view offsets cover half of it;
* a full-resolution refinement sees the upsampled features together with the raw input, so edges and
  texture next to the hole boundary stay sharp.

Outputs (:class:`FillOutput`): rgb as a residual on the Telea prior carried in the input, normalised
inverse depth (``scale / depth``, see :mod:`.conditioning`) and a confidence logit. Observed pixels are
never changed: the prediction is composed into the hole pixels only.

:meth:`FillNet.forward` is what training differentiates; :meth:`FillNet.infer_tiles` (and :meth:`FillNet.infer`,
its whole-frame form) computes the same values where they are used, about a third cheaper at 640 x 480.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from worldstereo_ros.errors import InputError
from worldstereo_ros.generation.learned.conditioning import INPUT_CHANNELS, support_range

_TELEA = slice(5, 8)
_HOLE = 3
_COND_RGB = slice(0, 3)
#: side of the tiles :meth:`FillNet.infer` refines (those holding a hole pixel), pixels
TILE = 32


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


@dataclass
class TileFill:
    """:meth:`FillNet.infer_tiles`'s predictions on the T tiles of :data:`TILE` x :data:`TILE` pixels that hold a
    hole pixel.

    Attributes:
        values: (T, 5, TILE, TILE) float32: rgb in [0, 1] (the condition's at observed pixels), normalised
            inverse depth (>= 0) and confidence in [0, 1].
        logit: (T, 1, TILE, TILE) the confidence logit.
        frame, ty, tx: (T,) int64: the batch index and tile row / column (pixel rows ``ty * TILE ...``).
    """

    values: torch.Tensor
    logit: torch.Tensor
    frame: torch.Tensor
    ty: torch.Tensor
    tx: torch.Tensor


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

    def _unet(self, e0: torch.Tensor) -> torch.Tensor:
        """The encoder-decoder from the stem's (B, w0, H/4, W/4) features to the decoder's, same shape."""
        e1 = self.down1(e0)
        e2 = self.down2(e1)
        e3 = self.context(self.down3(e2))
        d2 = self.up2(torch.cat([F.interpolate(e3, size=e2.shape[-2:], mode="bilinear", align_corners=False), e2], 1))
        d1 = self.up1(torch.cat([F.interpolate(d2, size=e1.shape[-2:], mode="bilinear", align_corners=False), e1], 1))
        return self.up0(torch.cat([F.interpolate(d1, size=e0.shape[-2:], mode="bilinear", align_corners=False), e0],
                                  1))

    def forward(self, x: torch.Tensor) -> FillOutput:
        """x: (B, C, H, W) float32 input (``conditioning.build_input``), H and W multiples of 32."""
        if x.ndim != 4 or x.shape[1] != len(INPUT_CHANNELS):
            raise InputError("x", f"expected shape (B, {len(INPUT_CHANNELS)}, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % self.MULTIPLE or w % self.MULTIPLE:
            raise InputError("x", f"height and width must be multiples of {self.MULTIPLE}, got {h} x {w}")
        d0 = self._unet(self.stem(self.fold(x)))
        f = F.interpolate(self.to_fine(d0), size=(h, w), mode="bilinear", align_corners=False)
        out = self.refine(torch.cat([F.leaky_relu(f, 0.1), x], 1))
        hole = x[:, _HOLE:_HOLE + 1]
        imagined = (x[:, _TELEA] + out[:, :3]).clamp(0.0, 1.0)
        rgb = torch.where(hole > 0.5, imagined, x[:, _COND_RGB])
        logit = out[:, 4:5]
        return FillOutput(rgb=rgb, inv_depth=F.softplus(out[:, 3:4]), confidence=torch.sigmoid(logit),
                          confidence_logit=logit)

    def infer(self, x: torch.Tensor) -> FillOutput:
        """:meth:`forward` at inference cost: the same values at every hole pixel, less work elsewhere
        (:meth:`infer_tiles`, composed into whole frames).

        Args:
            x: (B, C, H, W) float32 as for :meth:`forward` (H and W multiples of 32).
        Returns:
            FillOutput (B, ., H, W): on tiles holding a hole pixel exactly :meth:`forward`'s values (to float
            rounding); elsewhere rgb is the condition's, inverse depth, confidence and its logit 0.
        """
        tiles = self.infer_tiles(x)
        b, _, h, w = x.shape
        rgb = x[:, _COND_RGB].clone(memory_format=torch.contiguous_format)
        inv, conf, logit = (x.new_zeros(b, 1, h, w) for _ in range(3))
        for dst, src in ((rgb, tiles.values[:, 0:3]), (inv, tiles.values[:, 3:4]), (conf, tiles.values[:, 4:5]),
                         (logit, tiles.logit)):
            view = dst.view(b, dst.shape[1], h // TILE, TILE, w // TILE, TILE).permute(0, 2, 4, 1, 3, 5)
            view[tiles.frame, tiles.ty, tiles.tx] = src
        return FillOutput(rgb=rgb, inv_depth=inv, confidence=conf, confidence_logit=logit)

    def infer_tiles(self, x: torch.Tensor) -> TileFill:
        """The predictions of :meth:`forward` on the :data:`TILE` x :data:`TILE` tiles that hold a hole pixel.

        Two exact rewrites of :meth:`forward` (no approximation; ``test_infer_matches_forward`` checks):

        * the fold + 1x1 stem convolution is one 4 x 4, stride-4 convolution with the same weights
          (a pixel-unshuffled channel ``c * 16 + i * 4 + j`` is pixel ``(i, j)`` of the 4 x 4 patch of ``c``);
        * the full-resolution refinement (two 3 x 3 convolutions, most of the network's cost) runs only on the
          tiles that hold a hole pixel, each with a 2-pixel halo, and the first layer's activations outside the
          frame are zeroed as the full-frame zero padding makes them.

        Args:
            x: (B, C, H, W) float32 as for :meth:`forward` (H and W multiples of 32); channels-last memory
                is fastest.
        """
        if x.ndim != 4 or x.shape[1] != len(INPUT_CHANNELS):
            raise InputError("x", f"expected shape (B, {len(INPUT_CHANNELS)}, H, W), got {tuple(x.shape)}")
        b, c, h, w = x.shape
        if h % self.MULTIPLE or w % self.MULTIPLE:
            raise InputError("x", f"height and width must be multiples of {self.MULTIPLE}, got {h} x {w}")
        stem0 = self.stem[0]
        e0 = F.conv2d(x, stem0.weight.view(stem0.out_channels, c, 4, 4), stem0.bias, stride=4)
        d0 = self._unet(self.stem[1:](e0))
        fine = self.to_fine(d0)  # (B, fine, H/4, W/4): upsampled below only where a tile needs it
        bi, _, ty, tx = (F.max_pool2d((x[:, _HOLE:_HOLE + 1] > 0.5).to(x.dtype), TILE) > 0).nonzero(as_tuple=True)
        if not bi.numel():
            empty = x.new_zeros(0, 5, TILE, TILE)
            return TileFill(values=empty, logit=empty[:, 4:5], frame=bi, ty=ty, tx=tx)
        halo = 2
        offsets = torch.arange(-halo, TILE + halo, device=x.device)
        rows, cols = ty[:, None] * TILE + offsets, tx[:, None] * TILE + offsets  # (T, TILE + 4) pixels
        nf = fine.shape[1]
        # the refinement's input, built in place in channels-last memory (T, s, s, fine + C): what its
        # convolutions run fastest on, with no concatenation or layout copy
        buf = x.new_empty(len(bi), rows.shape[1], cols.shape[1], nf + c)
        # gathered from the (B, H, W, C) view: on channels-last x that is a plain view, not a copy of the frame
        buf[..., nf:] = x.permute(0, 2, 3, 1)[bi[:, None, None], rows.clamp(0, h - 1)[:, :, None],
                                              cols.clamp(0, w - 1)[:, None, :]]
        # the bilinear upsampling (align_corners=False) at the tiles' pixel centres only: normalised
        # coordinates do not depend on the resolution, and 'border' clamps as interpolate does
        gx = ((2 * cols + 1) / w - 1).to(x.dtype)[:, None, :].expand(-1, rows.shape[1], -1)
        gy = ((2 * rows + 1) / h - 1).to(x.dtype)[:, :, None].expand(-1, -1, cols.shape[1])
        grid = torch.stack([gx, gy], -1)  # (T, s, s, 2)
        for k in range(b):  # one sampling per frame: indexing fine by tile would copy it once per tile
            sel = (bi == k).nonzero().squeeze(1)
            if sel.numel():
                g = grid[sel].reshape(1, -1, grid.shape[2], 2)
                sampled = F.leaky_relu(F.grid_sample(fine[k:k + 1], g, mode="bilinear", padding_mode="border",
                                                     align_corners=False), 0.1, inplace=True)
                sampled = sampled.view(nf, len(sel), *grid.shape[1:3]).permute(1, 2, 3, 0)
                if len(sel) == len(bi):
                    buf[..., :nf] = sampled
                else:
                    buf[sel, ..., :nf] = sampled
        # only tiles on the frame's border reach outside it: there, zero what the full frame's zero padding
        # makes zero (the input, and below the first layer's activations)
        border = ((ty == 0) | (tx == 0) | ((ty + 1) * TILE > h - halo) | ((tx + 1) * TILE > w - halo)).nonzero()[:, 0]
        inside = (((rows[border] >= 0) & (rows[border] < h))[:, :, None]
                  & ((cols[border] >= 0) & (cols[border] < w))[:, None, :]).to(x.dtype)[:, None]  # (E, 1, s, s)
        t = buf.permute(0, 3, 1, 2)  # (T, fine + C, s, s), channels-last memory
        t[border] = t[border] * inside
        xt = t[:, nf:]
        conv0, act, conv1 = self.refine
        y = act(conv0(t))
        y[border] = y[border] * inside
        out = conv1(y)[..., halo:-halo, halo:-halo]
        xin = xt[..., halo:-halo, halo:-halo]
        fill = (xin[:, _TELEA] + out[:, :3]).clamp(0.0, 1.0)
        fill = torch.where(xin[:, _HOLE:_HOLE + 1] > 0.5, fill, xin[:, _COND_RGB])
        logit = out[:, 4:5]
        values = torch.cat([fill, F.softplus(out[:, 3:4]), torch.sigmoid(logit)], 1)
        return TileFill(values=values, logit=logit, frame=bi, ty=ty, tx=tx)

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
    h, w = depth.shape[-2:]
    ranges = [support_range(o[0].cpu().numpy(), window_px) for o in observed]
    lo = torch.stack([torch.from_numpy(r[0])[None] for r in ranges]).to(depth.device)
    hi = torch.stack([torch.from_numpy(r[1])[None] for r in ranges]).to(depth.device)
    hi = F.interpolate(hi, size=(h, w), mode="nearest")
    lo = F.interpolate(lo, size=(h, w), mode="nearest")
    supported = hi > 0
    clamped = torch.where(supported, torch.minimum(torch.maximum(depth, lo), hi), depth)
    return clamped, supported

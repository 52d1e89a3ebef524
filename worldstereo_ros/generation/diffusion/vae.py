"""Keyframe VAE encode/decode around diffusers' ``AutoencoderKLWan``.

The released models work in a keyframe latent space: every frame is encoded alone (a 1-frame video), the posterior
mode is taken and normalised ``(z - mean) / std`` with the VAE config's per-channel statistics. The I2V image
condition is Wan's: the start image followed by zero frames, encoded as one video of ``4 (F - 1) + 1`` frames.

Images: (N, H, W, 3) float32 in [0, 1] (numpy or torch) outside; (B, 3, T, H, W) in [-1, 1] inside the VAE.
Latents: (1, 16, F, H/8, W/8) float32.
"""

from __future__ import annotations

import numpy as np
import torch


class KeyframeVAE:
    """Per-frame encode/decode with latent normalisation.

    Args:
        vae: a loaded ``AutoencoderKLWan``.
    """

    def __init__(self, vae) -> None:
        self.vae = vae
        cfg = vae.config
        self.mean = torch.tensor(cfg.latents_mean, dtype=torch.float32).view(1, -1, 1, 1, 1)
        self.std = torch.tensor(cfg.latents_std, dtype=torch.float32).view(1, -1, 1, 1, 1)

    @property
    def device(self) -> torch.device:
        return next(self.vae.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.vae.parameters()).dtype

    def _to_video(self, images) -> torch.Tensor:
        x = torch.as_tensor(np.asarray(images, np.float32) if not torch.is_tensor(images) else images).float()
        return (x.permute(0, 3, 1, 2) * 2 - 1)  # (N, 3, H, W) in [-1, 1]

    def _normalise(self, z: torch.Tensor) -> torch.Tensor:
        return (z.float() - self.mean.to(z.device)) / self.std.to(z.device)

    @torch.no_grad()
    def encode_frames(self, images) -> torch.Tensor:
        """(N, H, W, 3) in [0, 1] -> (1, 16, N, H/8, W/8): each frame encoded alone, posterior mode, normalised."""
        x = self._to_video(images)[:, :, None].to(self.device, self.dtype)  # (N, 3, 1, H, W)
        z = torch.cat([self.vae.encode(x[i: i + 1]).latent_dist.mode() for i in range(x.shape[0])], dim=0)
        return self._normalise(z).permute(2, 1, 0, 3, 4)  # (1, 16, N, h, w)

    @torch.no_grad()
    def encode_i2v_condition(self, image, frames: int) -> torch.Tensor:
        """Wan's I2V condition (1, 20, F, h, w): mask (4 channels, 1 on latent frame 0) | latent of [image, 0...]."""
        x = self._to_video(np.asarray(image, np.float32)[None])  # (1, 3, H, W)
        video = torch.zeros(1, 3, 4 * (frames - 1) + 1, *x.shape[-2:])
        video[:, :, 0] = x[0]
        z = self._normalise(self.vae.encode(video.to(self.device, self.dtype)).latent_dist.mode())
        mask = torch.zeros(1, 4, *z.shape[2:], device=z.device)
        mask[:, :, 0] = 1.0
        return torch.cat([mask, z], dim=1)

    @torch.no_grad()
    def decode_frames(self, latents: torch.Tensor) -> np.ndarray:
        """(1, 16, F, h, w) normalised latents -> (F, 8h, 8w, 3) float32 in [0, 1], each frame decoded alone."""
        z = latents.float() * self.std.to(latents.device) + self.mean.to(latents.device)
        frames = []
        for i in range(z.shape[2]):
            out = self.vae.decode(z[:, :, i: i + 1].to(self.device, self.dtype)).sample  # (1, 3, 1, H, W)
            frames.append(out[0, :, 0].float().permute(1, 2, 0))
        return ((torch.stack(frames) + 1) / 2).clamp(0, 1).cpu().numpy().astype(np.float32)

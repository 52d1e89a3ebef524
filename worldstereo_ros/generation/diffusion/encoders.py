"""Text (UMT5) and image (CLIP) encoders of the Wan2.1-I2V base, from local folders, with a prompt cache.

- :class:`PromptEncoder`: ``<base>/tokenizer`` + ``<base>/text_encoder`` (UMT5, fp32 as the release runs it).
  Prompts are cleaned like the release (ftfy, HTML unescape, whitespace), padded to 512 tokens and the embedding is
  zeroed past the true length. Embeddings are cached in memory and, with ``cache_dir``, on disk (UMT5-XXL is 5.7 B
  parameters: a robot can compute its few prompts once, elsewhere, and drop the encoder).
- :class:`ImageEncoder`: ``<base>/image_encoder`` (CLIP ViT-H/14) + ``<base>/image_processor``; output is the
  penultimate hidden state (1, tokens, 1280). The release feeds the PIL image (0-255 values) to a processor loaded
  with ``do_rescale=False``; ``release_scaling=True`` (default) reproduces that, False uses standard [0, 1] input.
"""

from __future__ import annotations

import hashlib
import html
import re
from pathlib import Path

import ftfy
import numpy as np
import torch
from transformers import AutoTokenizer, CLIPImageProcessor, CLIPVisionModel, UMT5EncoderModel

from worldstereo_ros.generation.diffusion.config import TEXT_TOKENS


def clean_prompt(text: str) -> str:
    """The release's prompt cleaning: ftfy fixes, HTML unescaped twice, whitespace collapsed."""
    text = ftfy.fix_text(text)
    text = html.unescape(html.unescape(text))
    return re.sub(r"\s+", " ", text).strip()


class PromptEncoder:
    """UMT5 prompt embeddings (1, 512, text_dim) float32, cached (module doc)."""

    def __init__(self, base: str | Path, device: torch.device | str = "cpu", cache_dir: str | Path | None = None,
                 dtype: torch.dtype = torch.float32) -> None:
        base = Path(base)
        self.tokenizer = AutoTokenizer.from_pretrained(str(base / "tokenizer"))
        self.model = UMT5EncoderModel.from_pretrained(str(base / "text_encoder"), torch_dtype=dtype).to(device).eval()
        # Checkpoints store one embedding table; some transformers 5.x versions left the encoder's copy untied
        # (random) after loading. The encoder must read the shared table.
        if self.model.encoder.embed_tokens.weight.data_ptr() != self.model.shared.weight.data_ptr():
            self.model.encoder.embed_tokens = self.model.shared
        self.device = torch.device(device)
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._tag = str(base.resolve())
        self._memory: dict[str, torch.Tensor] = {}

    def _key(self, prompt: str) -> str:
        return hashlib.sha256(f"{self._tag}\n{prompt}".encode()).hexdigest()[:32]

    @torch.no_grad()
    def encode(self, prompt: str) -> torch.Tensor:
        prompt = clean_prompt(prompt)
        key = self._key(prompt)
        if key in self._memory:
            return self._memory[key]
        path = self.cache_dir / f"{key}.pt" if self.cache_dir else None
        if path is not None and path.is_file():
            emb = torch.load(path, map_location="cpu", weights_only=True)
        else:
            tok = self.tokenizer([prompt], padding="max_length", max_length=TEXT_TOKENS, truncation=True,
                                 add_special_tokens=True, return_attention_mask=True, return_tensors="pt")
            mask = tok.attention_mask.to(self.device)
            out = self.model(tok.input_ids.to(self.device), mask).last_hidden_state.float()
            length = int(mask.sum())
            emb = torch.zeros_like(out)
            emb[:, :length] = out[:, :length]  # zero past the true length, as the release does
            emb = emb.cpu()
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                torch.save(emb, path)
        self._memory[key] = emb
        return emb

    def close(self) -> None:
        self.model = None


class ImageEncoder:
    """CLIP penultimate hidden state (1, tokens, image_dim) float32 of one image (H, W, 3) in [0, 1]."""

    def __init__(self, base: str | Path, device: torch.device | str = "cpu", release_scaling: bool = True,
                 dtype: torch.dtype = torch.float32) -> None:
        base = Path(base)
        self.processor = CLIPImageProcessor.from_pretrained(str(base / "image_processor"), do_rescale=False)
        self.model = CLIPVisionModel.from_pretrained(str(base / "image_encoder"), torch_dtype=dtype).to(device).eval()
        self.device = torch.device(device)
        self.release_scaling = release_scaling

    @torch.no_grad()
    def encode(self, image: np.ndarray) -> torch.Tensor:
        # uint8 like the release's PIL image; do_rescale=False then leaves 0-255 values (the release's input).
        pixels = (np.clip(np.asarray(image, np.float32), 0, 1) * 255).round().astype(np.uint8)
        inputs = self.processor(images=pixels, return_tensors="pt", do_rescale=not self.release_scaling)
        values = inputs.pixel_values.to(self.device, next(self.model.parameters()).dtype)
        out = self.model(pixel_values=values, output_hidden_states=True)
        return out.hidden_states[-2].float()

    def close(self) -> None:
        self.model = None

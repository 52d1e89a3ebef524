"""UMT5 prompt encoder (cache, zero padding, tied embeddings) and CLIP image encoder on the tiny base (issue 13)."""

from __future__ import annotations

import numpy as np
import torch

from worldstereo_ros.generation.diffusion.encoders import ImageEncoder, PromptEncoder, clean_prompt
from worldstereo_ros.generation.diffusion.tiny import TINY_BASE


def test_prompt_embedding_is_cached_on_disk_and_zero_padded(tiny_release, tmp_path):
    base = tiny_release / TINY_BASE
    enc = PromptEncoder(base, cache_dir=tmp_path / "cache")
    assert enc.model.encoder.embed_tokens.weight.data_ptr() == enc.model.shared.weight.data_ptr()
    emb = enc.encode("w1  w2 w3")
    assert emb.shape == (1, 512, 32)
    length = 3  # three words (the tiny tokenizer adds no </s>)
    assert (emb[0, :length].abs().sum(-1) > 0).all() and torch.all(emb[0, length:] == 0)
    files = list((tmp_path / "cache").glob("*.pt"))
    assert len(files) == 1
    # A second encoder reads the file instead of running the model.
    again = PromptEncoder(base, cache_dir=tmp_path / "cache")
    again.model = None
    assert torch.equal(again.encode("w1 w2 w3"), emb)  # cleaning collapses the whitespace: same key
    assert clean_prompt("  a &amp;amp; b\n") == "a & b"


def test_clip_scaling_switch(tiny_release):
    base = tiny_release / TINY_BASE
    img = np.full((30, 40, 3), 200 / 255, np.float32)
    release = ImageEncoder(base, release_scaling=True)
    standard = ImageEncoder(base, release_scaling=False)
    a, b = release.encode(img), standard.encode(img)
    assert a.shape == (1, 17, 16)  # 16 patches + class token, penultimate layer
    assert not torch.allclose(a, b)

"""The generator seam of generation/base.py: lazy registry, lifecycle defaults, request fields (issue 13, item 6)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from worldstereo_ros.errors import BackendError, InputError
from worldstereo_ros.generation import base
from worldstereo_ros.generation.base import (
    Capabilities,
    MemoryEstimate,
    available_backends,
    cpu_generator,
    create_backend,
    register_backend_path,
)


def test_importing_base_imports_no_backend():
    # Run in a fresh interpreter: this test session may already have imported render_fill.
    code = ("import sys, worldstereo_ros.generation.base as b; b.available_backends();"
            "print(any(m.startswith('worldstereo_ros.generation.render_fill') or m.startswith("
            "'worldstereo_ros.generation.diffusion') or m == 'diffusers' for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


def test_render_fill_resolves_through_the_registry():
    backend = create_backend("render_fill")
    assert backend.name == "render_fill"
    assert backend.capabilities == Capabilities()
    assert backend.device == torch.device("cpu") and backend.dtype == torch.float32
    backend.warmup()
    backend.close()
    assert isinstance(backend.memory_estimate(), MemoryEstimate)


def test_unknown_backend_names_the_valid_ones():
    with pytest.raises(InputError, match="backend: unknown generator backend 'nope'; valid: .*render_fill"):
        create_backend("nope")


def test_register_backend_path_is_lazy_and_checked(monkeypatch):
    monkeypatch.setattr(base, "BACKEND_PATHS", dict(base.BACKEND_PATHS))
    register_backend_path("broken", "worldstereo_ros.no_such_module:Thing")
    assert "broken" in available_backends()
    with pytest.raises(BackendError, match="backend 'broken': cannot import worldstereo_ros.no_such_module"):
        create_backend("broken")
    register_backend_path("alias", "worldstereo_ros.generation.render_fill:RenderFillGenerator")
    assert create_backend("alias").name == "render_fill"
    register_backend_path("notgen", "worldstereo_ros.errors:InputError")
    with pytest.raises((BackendError, TypeError)):
        create_backend("notgen")
    with pytest.raises(InputError, match="target: expected 'package.module:attribute'"):
        register_backend_path("bad", "no_colon_here")


def test_cpu_generator():
    g = torch.Generator().manual_seed(3)
    assert cpu_generator(g) is g
    a = torch.randn(3, generator=cpu_generator(None, seed=5))
    b = torch.randn(3, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_request_checks_prompt_and_start_rgb():
    from worldstereo_ros.generation.base import GenerationRequest

    n, h, w = 2, 4, 6
    req = GenerationRequest(K=np.zeros((n, 3, 3)), T_world_cam=np.zeros((n, 4, 4)), height=h, width=w,
                            cond_rgb=np.zeros((n, h, w, 3), np.float32), cond_depth=np.zeros((n, h, w), np.float32),
                            cond_mask=np.zeros((n, h, w), bool), cond_index=np.zeros((n, h, w), np.int64),
                            references=[[], []], source=None, start_rgb=np.zeros((h, w + 1, 3), np.float32))
    with pytest.raises(InputError, match=r"start_rgb: expected shape \(4, 6, 3\)"):
        req.check()
    req.start_rgb = None
    req.prompt = 3
    with pytest.raises(InputError, match="prompt: expected a str"):
        req.check()
    req.prompt = "a kitchen"
    req.check()


def test_backend_defaults_are_merged_under_options(monkeypatch):
    monkeypatch.setattr(base, "BACKEND_DEFAULTS", {})
    base.set_backend_defaults("render_fill", smooth_px=2.0, ssm=False)
    b = create_backend("render_fill", ssm=True)
    assert b.smooth_px == 2.0 and b.ssm is True
    base.set_backend_defaults("render_fill")
    assert create_backend("render_fill").smooth_px == 8.0

"""Offline loading of the released WorldStereo weights, header inspection, and the release layout for tests.

Released layout (nothing is downloaded)::

    <model_path>/worldstereo-{camera,memory,memory-dmd}/config.json        # base_model, controlnet_cfg, ...
    <model_path>/worldstereo-{...}/model.safetensors                      # un-prefixed transformer keys
    <base>/transformer/config.json + diffusion_pytorch_model*.safetensors  # diffusers Wan2.1-I2V (fp32 shards)
    <base>/{vae,text_encoder,tokenizer,image_encoder,image_processor,scheduler}/

``model.safetensors`` holds the branch, the camera tokens and whatever part of the backbone was trained; every other
backbone key comes from the base shards. Loading reads one tensor at a time from memory-mapped files and casts it to
the target dtype on the target device, so the 65.6 GB fp32 base transformer is never materialised.
Checks: an unexpected key (in neither the model nor known to it) is an error naming it; every missing key must be a
backbone key found in the base; a shape that disagrees with ``config.json`` names the first such key.
"""

from __future__ import annotations

import inspect
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch
from accelerate import init_empty_weights
from diffusers.models.transformers.transformer_wan import WanTransformer3DModel
from safetensors import safe_open
from safetensors.torch import save_file

from worldstereo_ros.errors import BackendError, ConfigError, InputError
from worldstereo_ros.generation.diffusion.config import VARIANTS, WorldStereoConfig
from worldstereo_ros.generation.diffusion.transformer import WorldStereoTransformer

WEIGHTS_NAME = "model.safetensors"
BASE_WEIGHTS = "diffusion_pytorch_model.safetensors"
BASE_INDEX = "diffusion_pytorch_model.safetensors.index.json"
#: Bytes per parameter of the storage dtypes ``weights inspect`` reports.
BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8": 1}
_DTYPE_BYTES = {"F64": 8, "F32": 4, "BF16": 2, "F16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8, "I32": 4, "U8": 1,
                "I8": 1, "BOOL": 1}


def variant_dir(model_path: str | Path, variant: str) -> Path:
    """``<model_path>/worldstereo-<variant>``; ConfigError for an unknown variant."""
    if variant not in VARIANTS:
        raise ConfigError("variant", f"expected one of {', '.join(VARIANTS)}, got {variant!r}")
    return Path(model_path) / f"worldstereo-{variant}"


def resolve_base(model_path: str | Path, cfg: WorldStereoConfig, base_model_path: str | Path | None = None) -> Path:
    """The local diffusers base folder: ``base_model_path``, else ``<model_path>/<repo name of base_model>``, else
    ``base_model`` itself when it is a local folder. BackendError lists the places tried."""
    tried = []
    candidates = [Path(base_model_path)] if base_model_path else []
    candidates += [Path(model_path) / cfg.base_model.rstrip("/").split("/")[-1], Path(cfg.base_model)]
    for candidate in candidates:
        tried.append(str(candidate))
        if (candidate / "transformer" / "config.json").is_file():
            return candidate
    raise BackendError(f"base model {cfg.base_model!r} not found offline; tried: {', '.join(tried)} "
                       f"(set base_model_path to a local diffusers Wan2.1-I2V folder)")


def read_header(path: str | Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{key: (shape, dtype)}`` of a safetensors file, reading only its header."""
    out = {}
    with safe_open(str(path), framework="numpy") as f:
        for key in f.keys():
            sl = f.get_slice(key)
            out[key] = (tuple(sl.get_shape()), sl.get_dtype())
    return out


def base_shards(base: Path) -> list[Path]:
    """The base transformer's safetensors files (sharded with an index, or one file)."""
    folder = base / "transformer"
    index = folder / BASE_INDEX
    if index.is_file():
        weight_map = json.loads(index.read_text()).get("weight_map", {})
        return [folder / name for name in sorted(set(weight_map.values()))]
    if (folder / BASE_WEIGHTS).is_file():
        return [folder / BASE_WEIGHTS]
    raise BackendError(f"no {BASE_WEIGHTS} or {BASE_INDEX} in {folder}")


def wan_config(base: Path) -> dict[str, Any]:
    """The ``WanTransformer3DModel`` arguments of ``<base>/transformer/config.json`` (diffusers bookkeeping dropped)."""
    raw = json.loads((base / "transformer" / "config.json").read_text())
    names = set(inspect.signature(WanTransformer3DModel.__init__).parameters) - {"self"}
    kwargs = {k: v for k, v in raw.items() if k in names}
    if "patch_size" in kwargs:
        kwargs["patch_size"] = tuple(kwargs["patch_size"])
    return kwargs


@dataclass
class KeyReport:
    """Which tensor came from where when a model was loaded (all lists sorted)."""

    from_model_file: list[str] = field(default_factory=list)
    from_base: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)


def _first_shape_mismatch(expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]],
                          source: str) -> None:
    for key in sorted(found):
        if key in expected and tuple(found[key]) != tuple(expected[key]):
            raise ConfigError(key, f"shape {tuple(found[key])} in {source} disagrees with config.json, which gives "
                              f"{tuple(expected[key])}")


def _keep_fp32(key: str, patterns: Iterable[str]) -> bool:
    # Same rule as diffusers' from_pretrained: modules named in _keep_in_fp32_modules stay fp32 in the backbone.
    # The branch and camera tokens run in the compute dtype (the release autocasts them).
    if key.startswith(("controlnet.", "camera_embedding.")):
        return False
    parts = set(key.split("."))
    return any(p in parts for p in patterns)


def build_empty(cfg: WorldStereoConfig, wan_kwargs: dict[str, Any]):
    """The transformer with parameters on the meta device (buffers real): costs no memory."""
    with init_empty_weights(include_buffers=False):
        return WorldStereoTransformer(cfg.branch, kind="memory" if cfg.is_memory else "camera", **wan_kwargs)


def load_transformer(model_path: str | Path, variant: str = "memory-dmd", base_model_path: str | Path | None = None,
                     dtype: Any = None, device: Any = "cpu"):
    """Load the released transformer offline: base shards, then ``model.safetensors`` on top, cast per tensor.

    Args:
        model_path: folder holding ``worldstereo-<variant>/``.
        variant: ``camera``, ``memory`` or ``memory-dmd``.
        base_model_path: local diffusers Wan2.1-I2V folder (default: see :func:`resolve_base`).
        dtype: torch dtype of the weights (default float32); backbone norms/time embedder stay fp32 as in diffusers.
        device: where the weights go, one tensor at a time.

    Returns:
        (model in eval mode, WorldStereoConfig, KeyReport).

    Raises:
        ConfigError: a bad config.json, a shape that disagrees with it (naming the key), an unexpected key, or a
            missing key that is not in the base either (naming it).
        BackendError: files not found.
    """
    dtype = dtype or torch.float32
    folder = variant_dir(model_path, variant)
    cfg = WorldStereoConfig.from_file(folder / "config.json", variant)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise BackendError(f"{weights} not found")
    base = resolve_base(model_path, cfg, base_model_path)
    model = build_empty(cfg, wan_config(base))
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    keep = list(getattr(model, "_keep_in_fp32_modules", None) or [])
    report = KeyReport()

    overlay = {k: s for k, (s, _) in read_header(weights).items()}
    report.unexpected = sorted(set(overlay) - set(expected))
    if report.unexpected:
        raise ConfigError(report.unexpected[0], f"unexpected key in {weights} ({len(report.unexpected)} in all: "
                          f"{', '.join(report.unexpected[:5])}{'...' if len(report.unexpected) > 5 else ''})")
    _first_shape_mismatch(expected, overlay, str(weights))
    tensors: dict[str, torch.Tensor] = {}

    def take(handle, key: str) -> None:
        t = handle.get_tensor(key)
        target = torch.float32 if (t.is_floating_point() and _keep_fp32(key, keep)) else dtype
        tensors[key] = t.to(device=device, dtype=target if t.is_floating_point() else t.dtype)

    needed = set(expected) - set(overlay)
    for shard in base_shards(base):
        with safe_open(str(shard), framework="pt") as f:
            keys = set(f.keys())
            stray = sorted(keys - set(expected))
            if stray:
                raise ConfigError(stray[0], f"key of the base {shard} is not a Wan transformer key of this config "
                                  f"(wrong base model?)")
            _first_shape_mismatch(expected, {k: tuple(f.get_slice(k).get_shape()) for k in keys & needed}, str(shard))
            for key in sorted(keys & needed):
                take(f, key)
    report.from_base = sorted(tensors)
    with safe_open(str(weights), framework="pt") as f:
        for key in sorted(overlay):
            take(f, key)
    report.from_model_file = sorted(overlay)
    report.missing = sorted(set(expected) - set(tensors))
    if report.missing:
        where = "the branch/camera weights must be in model.safetensors" if report.missing[0].startswith(
            ("controlnet.", "camera_embedding.", "ref_index_embedding.")) else "not in the base shards either"
        raise ConfigError(report.missing[0], f"missing ({len(report.missing)} in all): {where}")
    model.load_state_dict(tensors, strict=True, assign=True)
    return model.to(device).eval(), cfg, report


# ---------------------------------------------------------------------------------------------- inspect


@dataclass
class Inspection:
    """What a weights folder holds, from headers and configs only."""

    variants: dict[str, dict[str, Any]]
    base: Path | None
    base_params: int
    base_dtypes: dict[str, int]
    notes: list[str]

    def render(self) -> str:
        lines = []
        for name, info in self.variants.items():
            lines.append(f"worldstereo-{name}: {info['status']}")
            for k in ("params_in_file", "groups", "branch", "total_params"):
                if k in info:
                    lines.append(f"  {k}: {info[k]}")
            for k in ("memory_GB",):
                if k in info:
                    lines.append("  memory estimate (transformer weights + ~5 GB activations, GB): "
                                 + ", ".join(f"{m} {v:.1f}" for m, v in info[k].items()))
        lines.append(f"base: {self.base or 'not found'}; transformer params {_count(self.base_params)} "
                     f"stored as {self.base_dtypes}")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _count(n: int) -> str:
    """A parameter count in B (billions) or, below 0.1 B, in M."""
    return f"{n / 1e9:.3f} B" if n >= 1e8 else f"{n / 1e6:.3f} M"


def _group(key: str) -> str:
    if key.startswith("controlnet."):
        return "branch"
    if key.startswith(("camera_embedding.", "ref_index_embedding.")):
        return "camera_tokens"
    return "backbone"


def inspect_weights(model_path: str | Path, base_model_path: str | Path | None = None,
                    activations_gb: float = 5.0) -> Inspection:
    """Read headers and configs of every released variant under ``model_path`` (no tensor is loaded)."""
    model_path = Path(model_path)
    if not model_path.is_dir():
        raise InputError("model_path", f"not a folder: {model_path}")
    variants: dict[str, dict[str, Any]] = {}
    base: Path | None = None
    notes: list[str] = []
    for variant in VARIANTS:
        folder = variant_dir(model_path, variant)
        info: dict[str, Any] = {}
        variants[variant] = info
        if not folder.is_dir():
            info["status"] = "missing"
            continue
        try:
            cfg = WorldStereoConfig.from_file(folder / "config.json", variant)
        except ConfigError as exc:
            info["status"] = f"bad config.json ({exc})"
            continue
        if not (folder / WEIGHTS_NAME).is_file():
            info["status"] = f"config.json present, {WEIGHTS_NAME} missing"
            continue
        header = read_header(folder / WEIGHTS_NAME)
        groups: dict[str, int] = {}
        for key, (shape, _) in header.items():
            groups[_group(key)] = groups.get(_group(key), 0) + math.prod(shape)
        info["status"] = f"ok ({len(header)} tensors, base_model {cfg.base_model!r})"
        info["params_in_file"] = sum(groups.values())
        info["groups"] = {k: f"{v / 1e6:.2f} M" for k, v in sorted(groups.items())}
        b = cfg.branch
        info["branch"] = (f"dim {b.dim}, heads {b.num_heads}, ffn {b.ffn_dim}, layers {b.num_layers}, "
                          f"add {b.add_channels}")
        if base is None:
            try:
                base = resolve_base(model_path, cfg, base_model_path)
            except BackendError as exc:
                notes.append(str(exc))
        info["_branch_params"] = groups.get("branch", 0) + groups.get("camera_tokens", 0)
    base_params, dtypes = 0, {}
    if base is not None:
        try:
            for shard in base_shards(base):
                for shape, dt in read_header(shard).values():
                    base_params += math.prod(shape)
                    dtypes[dt] = dtypes.get(dt, 0) + math.prod(shape)
        except BackendError as exc:
            notes.append(str(exc))
    for info in variants.values():
        extra = info.pop("_branch_params", None)
        if extra is None:
            continue
        total = base_params + extra
        info["total_params"] = f"{_count(total)} (base {_count(base_params)} + branch/camera {_count(extra)})"
        gb = {m: total * BYTES[m] / 1e9 + activations_gb for m in ("bf16", "fp8")}
        # Group offload keeps ~2 backbone blocks + the branch on the device; the rest streams from pinned host RAM.
        per_block = base_params / 40 if base_params else 0
        gb["offload"] = (2 * per_block + extra) * BYTES["bf16"] / 1e9 + activations_gb
        info["memory_GB"] = gb
    if not notes and base is None:
        notes.append("no variant folder found: expected worldstereo-{camera,memory,memory-dmd}/")
    return Inspection(variants=variants, base=base, base_params=base_params, base_dtypes=dtypes, notes=notes)


# ---------------------------------------------------------------------------------------------- writing


def save_released_layout(model, cfg: WorldStereoConfig, model_path: str | Path, base_dirname: str = "base",
                         model_file_prefixes: tuple[str, ...] = ("controlnet.", "camera_embedding.",
                                                                 "ref_index_embedding."),
                         base_state: dict | None = None, shards: int = 2) -> Path:
    """Write ``model`` in the released layout (for tests and the tiny demo fixture); returns ``model_path``.

    ``<model_path>/<base_dirname>/transformer/`` gets the Wan config and the backbone in ``shards`` files (from
    ``base_state`` when given: a base that differs from the fine-tuned backbone); ``worldstereo-<variant>/`` gets
    ``config.json`` (``base_model`` = ``base_dirname``) and the keys starting with ``model_file_prefixes``.
    """
    model_path = Path(model_path)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    backbone = base_state if base_state is not None else {k: v for k, v in state.items()
                                                          if _group(k) == "backbone"}
    transformer_dir = model_path / base_dirname / "transformer"
    transformer_dir.mkdir(parents=True, exist_ok=True)
    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dict(model.config).items()
              if not k.startswith("_")}
    config["_class_name"] = "WanTransformer3DModel"
    (transformer_dir / "config.json").write_text(json.dumps(config, indent=2))
    keys = sorted(backbone)
    weight_map = {}
    for i in range(shards):
        part = keys[i::shards]
        name = f"diffusion_pytorch_model-{i + 1:05d}-of-{shards:05d}.safetensors"
        save_file({k: backbone[k].detach().contiguous().cpu() for k in part}, str(transformer_dir / name))
        weight_map.update({k: name for k in part})
    (transformer_dir / BASE_INDEX).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}, indent=2))
    folder = variant_dir(model_path, cfg.variant)
    folder.mkdir(parents=True, exist_ok=True)
    out_cfg = cfg.to_dict()
    out_cfg["base_model"] = base_dirname
    (folder / "config.json").write_text(json.dumps(out_cfg, indent=2))
    save_file({k: v for k, v in state.items() if k.startswith(model_file_prefixes)}, str(folder / WEIGHTS_NAME))
    return model_path

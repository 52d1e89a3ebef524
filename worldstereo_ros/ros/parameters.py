"""The nodes' parameters: one table per node for the ROS declarations, the YAML, ``--help`` and the README.

Each :class:`ParamSpec` carries type, default, unit, range and description. ``config/worldstereo.yaml``
holds every default (a test checks they agree), :func:`declare` turns the table into typed ROS
parameters with descriptors, and ``python -m worldstereo_ros.ros.parameters`` prints the README table.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from worldstereo_ros.errors import ConfigError


@dataclass(frozen=True)
class ParamSpec:
    name: str
    default: Any
    description: str
    unit: str = ""
    min: float | None = None
    max: float | None = None
    choices: tuple[str, ...] = ()
    #: read-only parameters take effect only at start-up (they shape subscriptions or the pipeline); every
    #: other one is live: ``ros2 param set`` takes effect at its next use (the description says when).
    read_only: bool = False

    @property
    def type_name(self) -> str:
        if isinstance(self.default, list):
            return "string[]" if self.default and isinstance(self.default[0], str) else "double[]"
        return {bool: "bool", int: "int", float: "double", str: "string"}[type(self.default)]

    def check(self, value: Any) -> Any:
        """Return ``value`` converted to this parameter's type, or raise ConfigError naming the parameter."""
        kind = type(self.default)
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is list and not isinstance(value, str):
            try:
                value = list(value)  # rclpy hands arrays back as array.array or tuples
            except TypeError:
                pass
        if type(value) is not kind:
            raise ConfigError(self.name, f"expected {self.type_name}, got {type(value).__name__} {value!r}")
        if self.type_name == "string[]" and not all(isinstance(v, str) for v in value):
            raise ConfigError(self.name, f"expected string[], got {value!r}")
        if self.min is not None and value < self.min:
            raise ConfigError(self.name, f"must be >= {self.min} {self.unit}".rstrip() + f", got {value}")
        if self.max is not None and value > self.max:
            raise ConfigError(self.name, f"must be <= {self.max} {self.unit}".rstrip() + f", got {value}")
        if self.choices and value not in self.choices:
            raise ConfigError(self.name, f"must be one of {', '.join(self.choices)}; got {value!r}")
        return value


#: Folders every path parameter (model_path, base_model_path, depth_model_path, state_dir, replay_node's folder)
#: must resolve into; "." is the working directory at start-up. Shared by every node that takes paths
#: (ros/path_parameters.py checks them).
ALLOWED_ROOTS = ParamSpec("allowed_roots", [".", "~/.cache/worldstereo_ros"], "Folders every path parameter "
                          "(model paths, state_dir) must resolve into ('..' and symlinks out refused); '.' = the "
                          "working directory at start-up, '~' = the home folder.", read_only=True)

IMAGINATION_NODE_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("fixed_frame", "map", "Frame the cache, poses and imagined views are expressed in."),
    ParamSpec("base_frame", "base_link", "Robot frame whose poses candidate paths give; the camera "
              "extrinsic is looked up from it."),
    ParamSpec("camera_frame", "", "Camera optical frame; empty = the image's header.frame_id."),
    ParamSpec("snapshot_frame", "worldstereo_snapshot", "TF frame published at the snapshot camera pose "
              "(child of fixed_frame)."),
    ParamSpec("backend", "render_fill", "Generator backend.", choices=("render_fill", "learned", "worldstereo"),
              read_only=True),
    ParamSpec("model_path", "", "Local folder with model weights (diffusion backends); unused by render_fill.",
              read_only=True),
    ParamSpec("variant", "memory-dmd", "WorldStereo model variant (worldstereo backend); memory-dmd samples in 4 "
              "steps.", choices=("memory-dmd", "memory", "camera"), read_only=True),
    ParamSpec("base_model_path", "", "Local diffusers Wan2.1-I2V folder; empty = <model_path>/<base model name>.",
              read_only=True),
    ParamSpec("dtype", "auto", "Weights dtype of the worldstereo backend; auto = bf16 on CUDA, fp32 on CPU.",
              choices=("auto", "float32", "bfloat16", "float16"), read_only=True),
    ParamSpec("steps", 0, "Denoising steps of the worldstereo backend; 0 = the variant's (4 DMD, 40 otherwise).",
              "steps", 0, 1000, read_only=True),
    ParamSpec("prompt", "", "Text prompt describing the scene (worldstereo backend)."),
    ParamSpec("offload", "none", "Weights offload of the worldstereo backend for GPUs smaller than the model: "
              "none, model (per component), group (per transformer block).", choices=("none", "model", "group"),
              read_only=True),
    ParamSpec("device", "cpu", "Torch device for the pipeline (cpu, cuda, cuda:1, ...).", read_only=True),
    ParamSpec("memory", "ggm+ssm", "Memories used across paths: none, ggm (global cache), ggm+ssm "
              "(cache + keyframe references); takes effect at the next snapshot.", choices=("none", "ggm", "ggm+ssm")),
    ParamSpec("frames_per_path", 25, "Imagined views per path (a goal may override, 0 = this); at most "
              "max_frames_per_path.", "views", 2, 500),
    ParamSpec("image_width", 0, "Width of the imagined views; 0 = the camera's; takes effect at the next "
              "snapshot.", "px", 0, 4096),
    ParamSpec("image_height", 0, "Height of the imagined views; 0 = the camera's; takes effect at the next "
              "snapshot.", "px", 0, 4096),
    ParamSpec("voxel_size_m", 0.01, "Voxel size of the global cache.", "m", 0.001, 1.0, read_only=True),
    ParamSpec("max_cache_points", 5_000_000, "Point budget of the global cache (lowest confidence "
              "evicted first).", "points", 1000, 100_000_000, read_only=True),
    ParamSpec("publish_voxel_size_m", 0.02, "Voxel size of the published global_cache; 0 = the cache's "
              "own points.", "m", 0.0, 1.0),
    ParamSpec("local_radius_m", 4.0, "Radius of local_cache around the robot.", "m", 0.1, 100.0),
    ParamSpec("local_frame", "", "Frame of local_cache; empty = base_frame.", ""),
    ParamSpec("local_rate_hz", 2.0, "Rate of local_cache; 0 = off; the timer is rebuilt when set.", "Hz", 0.0, 50.0),
    ParamSpec("sync_tolerance_s", 0.02, "Largest stamp difference between image, depth and camera_info "
              "paired into a snapshot; applies to the next pairing when set.", "s", 0.0, 1.0),
    ParamSpec("snapshot_period_s", 0.0, "Take a snapshot every this many seconds; 0 = only on request; the timer "
              "is rebuilt when set.", "s", 0.0, 3600.0),
    ParamSpec("use_compressed", False, "Subscribe to image as sensor_msgs/CompressedImage.", read_only=True),
    ParamSpec("use_depth", True, "Subscribe to depth; false = an RGB-only camera (image + camera_info), whose "
              "snapshot depth comes from the depth model depth_model_path.", read_only=True),
    ParamSpec("depth_model_path", "", "Local folder of a transformers depth-estimation model (e.g. Depth Anything "
              "V2); required when use_depth is false, loaded at the first snapshot.", read_only=True),
    ParamSpec("camera_height_m", 0.0, "RGB-only camera: its height above the floor, giving estimated depth its "
              "metric scale (a plane fitted to the image's lower third); 0 = unused.", "m", 0.0, 100.0),
    ParamSpec("median_depth_m", 0.0, "RGB-only camera: typical scene distance giving estimated depth its scale "
              "when camera_height_m is 0; both 0 = depth stays relative (said in the log and /diagnostics).",
              "m", 0.0, 1000.0),
    ParamSpec("busy_policy", "queue", "A request arriving while busy: queue (bounded) or preempt the "
              "running one.", choices=("queue", "preempt")),
    ParamSpec("queue_size", 2, "Requests waiting behind the running one (queue policy): a topic request "
              "then drops the oldest waiting one, an imagine goal or take_snapshot call is refused. Sizes the "
              "executor (one thread per goal that may wait).", "requests", 1, 100, read_only=True),
    ParamSpec("publish_camera_tf", False, "Publish each imagined camera as a TF frame "
              "worldstereo/<path_id>/<index>."),
    ParamSpec("input_reliability", "best_effort", "Reliability of the camera subscriptions "
              "(best_effort matches sensor drivers and reliable publishers).",
              choices=("best_effort", "reliable"), read_only=True),
    ParamSpec("input_depth", 5, "History depth of the camera subscriptions.", "messages", 1, 100,
              read_only=True),
    ParamSpec("tf_timeout_s", 0.2, "How long a TF lookup may wait for data.", "s", 0.0, 10.0),
    ParamSpec("bank_capacity", 8, "Keyframes kept in the spatial-stereo memory.", "keyframes", 1, 256,
              read_only=True),
    ParamSpec("keyframe_stride", 5, "Every n-th imagined view (and the last) becomes a keyframe.", "views", 1, 100,
              read_only=True),
    ParamSpec("seed", 0, "Seed of the generator (runs are repeatable); takes effect at the next snapshot.", "",
              0, 2**31 - 1),
    ParamSpec("diagnostics_period_s", 1.0, "Period of /diagnostics; the timer is rebuilt when set.", "s", 0.1, 60.0),
    ParamSpec("problem_window_s", 10.0, "/diagnostics is WARN while a problem was reported within this many "
              "seconds, OK again after (the counts stay).", "s", 0.1, 86400.0),
    # limits, checked before anything is allocated for a request (issue 14, item 2)
    ParamSpec("max_image_pixels", 8_294_400, "Largest camera image (width x height) a snapshot decodes, and "
              "largest image_width x image_height; the default is 3840 x 2160.", "px", 1024, 67_108_864),
    ParamSpec("max_paths_per_request", 16, "Most paths in one imagine goal or candidate_paths message; more "
              "are refused.", "paths", 1, 1000),
    ParamSpec("max_poses_per_path", 10_000, "Most poses in one nav_msgs/Path; longer paths are refused.",
              "poses", 2, 1_000_000),
    ParamSpec("max_frames_per_path", 500, "Most views per path, for the frames_per_path parameter and a "
              "goal's frames_per_path alike; a goal asking more is rejected.", "views", 2, 100_000),
    ParamSpec("chunk_frames", 25, "Views rendered, generated and merged together: a longer path runs chunk by "
              "chunk so memory does not grow with its length (0 = the whole path at once; a video backend "
              "generates each chunk as its own clip); takes effect at the next snapshot.", "views", 0, 100_000),
    # persistence of the memories (issue 14, item 6)
    ParamSpec("state_dir", "", "Folder where the cache and the memory bank are saved (global_cache.npz, "
              "memory_bank.npz) on shutdown, on the save_state service and every save_period_s; empty = off. "
              "Must lie inside allowed_roots.", read_only=True),
    ParamSpec("save_period_s", 0.0, "Save the state every this many seconds when it changed; 0 = only on "
              "shutdown and save_state; the timer is rebuilt when set.", "s", 0.0, 86400.0),
    ParamSpec("restore_on_start", False, "Load the saved state from state_dir at start; a missing, truncated "
              "or corrupt file is logged (naming the file and field) and the node starts empty.",
              read_only=True),
    ParamSpec("generator", "local", "Where the backend runs: local (in this process) or remote (generation_node, "
              "possibly on another host, over DDS; docs/split-deployment.md).", choices=("local", "remote"),
              read_only=True),
    ParamSpec("generation_namespace", "", "Namespace of generation_node's generate action (generator remote); "
              "empty = this node's namespace.", read_only=True),
    ParamSpec("generation_timeout_s", 120.0, "Generator remote: the longest silence accepted from generation_node "
              "(finding it, accepting a request, the next frame or the result).", "s", 0.1, 3600.0,
              read_only=True),
    ParamSpec("generation_rgb_encoding", "32FC3", "Generator remote: colour images on the wire, both ways: 32FC3 "
              "(exact, the single process's views) or rgb8 (a quarter of the bytes, colours rounded to 1/255).",
              choices=("32FC3", "rgb8"), read_only=True),
    ALLOWED_ROOTS,
)

PARAMS_BY_NAME = {p.name: p for p in IMAGINATION_NODE_PARAMS}

#: replay_node's parameters (declared from this table; ``worldstereo-ros replay --help`` lists them).
REPLAY_NODE_PARAMS: tuple[ParamSpec, ...] = (
    ParamSpec("folder", "", "RGB-D sequence to replay: a 7-Scenes-style folder or a TUM RGB-D sequence; must lie "
              "inside allowed_roots."),
    ParamSpec("rate_hz", 10.0, "Frames published per second.", "Hz", 0.01, 1000.0),
    ParamSpec("fixed_frame", "map", "Parent frame of the replayed poses on /tf."),
    ParamSpec("camera_frame", "camera_color_optical_frame", "Optical frame of the images (header.frame_id)."),
    ParamSpec("first_frame", 0, "First frame index replayed.", "frames", 0, 2**31 - 1),
    ParamSpec("stride", 1, "Replay every n-th frame.", "frames", 1, 100_000),
    ParamSpec("max_frames", 0, "Frames replayed at most; 0 = all.", "frames", 0, 2**31 - 1),
    ParamSpec("loop", False, "Start over after the last frame."),
    ParamSpec("base_frame", "", "Robot base frame: when set, fixed_frame -> base_frame goes on /tf and the "
              "extrinsic base_to_camera on /tf_static; empty = fixed_frame -> camera_frame directly."),
    ParamSpec("base_to_camera", [0.0, 0.0, 0.0, -0.5, 0.5, -0.5, 0.5], "Camera optical frame on the base: x y z "
              "(m) qx qy qz qw; the default is REP 103 optical axes at the base origin."),
    ALLOWED_ROOTS,
)


def help_text(specs: tuple[ParamSpec, ...]) -> str:
    """Plain-text list of ``specs`` (name, type, default, unit, description) for ``--help``."""
    lines = []
    for p in specs:
        unit = f" [{p.unit}]" if p.unit else ""
        lines.append(f"  {p.name} ({p.type_name}, default {p.default!r}){unit}: {p.description}")
    return "\n".join(lines)


def defaults() -> dict[str, Any]:
    return {p.name: p.default for p in IMAGINATION_NODE_PARAMS}


def validate_params(specs: tuple[ParamSpec, ...], values: dict[str, Any]) -> dict[str, Any]:
    """Check a full or partial parameter dict against ``specs``; unknown names and bad values raise ConfigError."""
    by_name = {spec.name: spec for spec in specs}
    out = {}
    for name, value in values.items():
        if name not in by_name:
            raise ConfigError(name, f"unknown parameter; valid: {', '.join(sorted(by_name))}")
        out[name] = by_name[name].check(value)
    return out


def validate(values: dict[str, Any]) -> dict[str, Any]:
    """:func:`validate_params` for imagination_node."""
    return validate_params(IMAGINATION_NODE_PARAMS, values)


def check_startup(values: dict[str, Any]) -> None:
    """Check the combinations of start-up parameters in a full, validated parameter dict.

    Raises:
        ConfigError: naming the parameter, e.g. ``depth_model_path`` missing or not a model folder while
            ``use_depth`` is false.
    """
    if not values["use_depth"]:
        folder = values["depth_model_path"]
        if not folder:
            raise ConfigError("depth_model_path", "required when use_depth is false (an RGB-only camera needs a "
                                                  "local transformers depth-estimation model folder)")
        if not (Path(folder) / "config.json").is_file():
            raise ConfigError("depth_model_path", f"no config.json in {folder!r} (expected a local transformers "
                                                  "depth-estimation model folder)")


def declare_params(node, specs: tuple[ParamSpec, ...]) -> dict[str, Any]:
    """Declare ``specs`` on ``node`` with typed descriptors (ranges, read-only, choices in the text); return the
    validated values. An override outside a range raises ConfigError (the node exits 2 with one line)."""
    # here, not at the top: validate() and the specs serve rclpy-free callers (tests, docs) too
    from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, ParameterType
    from rclpy.exceptions import InvalidParameterValueException

    for spec in specs:
        text = spec.description + (f" [{spec.unit}]" if spec.unit else "")
        if spec.choices:
            text += f" One of: {', '.join(spec.choices)}."
        desc = ParameterDescriptor(name=spec.name, description=text, read_only=spec.read_only)
        if spec.type_name == "string[]":
            desc.type = ParameterType.PARAMETER_STRING_ARRAY
        if isinstance(spec.default, float) and spec.min is not None:
            desc.floating_point_range = [FloatingPointRange(from_value=float(spec.min), to_value=float(spec.max))]
        elif isinstance(spec.default, int) and not isinstance(spec.default, bool) and spec.min is not None:
            desc.integer_range = [IntegerRange(from_value=int(spec.min), to_value=int(spec.max), step=1)]
        try:
            node.declare_parameter(spec.name, spec.default, desc)
        except InvalidParameterValueException as err:
            raise ConfigError(spec.name, str(err)) from None
    return validate_params(specs, {spec.name: node.get_parameter(spec.name).value for spec in specs})


def check_limits(values: dict[str, Any]) -> None:
    """Check the limits against the values they bound, in a full validated parameter dict (at start-up and
    whenever a parameter is set).

    Raises:
        ConfigError: naming the parameter, e.g. ``frames_per_path`` above ``max_frames_per_path``.
    """
    if values["frames_per_path"] > values["max_frames_per_path"]:
        raise ConfigError("frames_per_path", f"must be <= max_frames_per_path = {values['max_frames_per_path']}, "
                                             f"got {values['frames_per_path']}")
    pixels = values["image_width"] * values["image_height"]
    if pixels > values["max_image_pixels"]:
        raise ConfigError("image_width", f"image_width x image_height = {pixels} px exceeds max_image_pixels = "
                                         f"{values['max_image_pixels']}")


def declare(node) -> dict[str, Any]:
    """Declare every imagination_node parameter on ``node``; return the current values after the start-up checks."""
    values = declare_params(node, IMAGINATION_NODE_PARAMS)
    check_startup(values)
    check_limits(values)
    return values


def markdown_table(specs: tuple[ParamSpec, ...] | None = None) -> str:
    """The README's parameter table of ``specs`` (default: imagination_node's)."""
    rows = ["| parameter | type | default | unit | description |", "|---|---|---|---|---|"]
    for p in IMAGINATION_NODE_PARAMS if specs is None else specs:
        extra = f" One of: {', '.join(f'`{c}`' for c in p.choices)}." if p.choices else ""
        extra += " Start-up only (read-only)." if p.read_only else ""
        rows.append(f"| `{p.name}` | {p.type_name} | `{p.default!r}` | {p.unit} | {p.description}{extra} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())

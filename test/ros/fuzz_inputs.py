"""Hostile inputs for imagination_node's callbacks and the message converters (issue 14 item 4), shared by
test/ros/test_fuzz_callbacks.py (a few thousand inputs) and benchmarks/fuzz_node.py (100 000 per callback).

Strategies build messages a broken or malicious publisher could send: unknown encodings, declared sizes far
beyond the data (height x step up to 4 GiB x 4 GiB), truncated buffers, NaN/inf, zero and non-normalised
quaternions, paths of 0, 1, many poses, unknown frames, decompression bombs. :class:`NodeHarness` feeds
them to an in-process node through its callbacks (no spinning: the node's own worker thread runs requests)
and checks the node's contract: every input ends as a success or a counted, named rejection, and no input
reaches the catch-all ``request.failed`` (an unnamed exception is a bug).

Import after ``pytest.importorskip("rclpy")`` (or with the venv's rclpy on the path).
"""

from __future__ import annotations

import struct
import time
import zlib

import numpy as np
from builtin_interfaces.msg import Time
from geometry_msgs.msg import Point, Pose, PoseStamped, Quaternion
from hypothesis import strategies as st
from nav_msgs.msg import Path
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header

from worldstereo_ros.action import Imagine
from worldstereo_ros.msg import CandidatePath, CandidatePaths

UINT32 = 2**32 - 1
FIXED, BASE, CAMERA = "map", "base_link", "fuzz_camera"
W, H = 32, 24  # the valid camera's size: small, so a snapshot that passes costs little

# ------------------------------------------------------------------------------------------ scalars
finite = st.floats(-1e3, 1e3, allow_nan=False)
any_float = st.one_of(finite, st.floats(allow_nan=True, allow_infinity=True),
                      st.sampled_from([0.0, -0.0, float("nan"), float("inf"), -float("inf"), 1e308, -1e-320]))
dimension = st.one_of(st.integers(0, 48), st.sampled_from([2**16, 2**31 - 1, UINT32]))
text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=16)
frame_ids = st.one_of(st.sampled_from([FIXED, BASE, CAMERA, "", "unknown_frame", "/map", " map"]), text)
stamps = st.builds(Time, sec=st.integers(-2**31, 2**31 - 1), nanosec=st.integers(0, UINT32))
ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC1", "mono16", "16UC1", "32FC1", "yuv422", "64FC1",
             "RGB8", "", "jpeg")


def _header(frame_id: str, stamp: Time | None = None) -> Header:
    return Header(frame_id=frame_id, stamp=stamp or Time())


# ------------------------------------------------------------------------------------------ images
@st.composite
def raw_images(draw, depth: bool = False) -> Image:
    """An Image whose declared layout may disagree with its data in every way."""
    encoding = draw(st.one_of(st.sampled_from(ENCODINGS), text))
    msg = Image(header=_header(draw(frame_ids), draw(stamps)), encoding=encoding,
                height=draw(dimension), width=draw(dimension), is_bigendian=draw(st.integers(0, 255)),
                step=draw(st.one_of(st.integers(0, 256), st.sampled_from([UINT32, 2**31]))))
    msg.data = draw(st.binary(max_size=4096))
    return msg


@st.composite
def consistent_images(draw, depth: bool = False) -> Image:
    """An Image whose layout matches its data (maybe padded, maybe big-endian), with any pixel values,
    NaN/inf included for 32FC1; sized W x H or not."""
    encoding = draw(st.sampled_from(("16UC1", "32FC1", "mono16") if depth else ("rgb8", "bgr8", "rgba8", "mono8")))
    dtype = {"16UC1": np.uint16, "mono16": np.uint16, "32FC1": np.float32}.get(encoding, np.uint8)
    channels = {"rgb8": 3, "bgr8": 3, "rgba8": 4}.get(encoding, 1)
    h, w = draw(st.sampled_from([(H, W), (H, W), (H, W), (1, 1), (H + 1, W), (2, 3)]))
    pad = draw(st.sampled_from([0, 0, 1, 7]))
    big = draw(st.booleans())
    n = h * w * channels
    if dtype is np.float32:
        with np.errstate(over="ignore"):  # float64 beyond float32's range becomes inf, one more bad value
            # a few drawn values tiled over the image: as hostile as n draws, and n times cheaper
            values = np.resize(np.array(draw(st.lists(any_float, min_size=1, max_size=16)), dtype=np.float32), n)
    else:
        values = np.frombuffer(draw(st.binary(min_size=n * np.dtype(dtype).itemsize,
                                              max_size=n * np.dtype(dtype).itemsize)), dtype=dtype)
    rows = values.astype(np.dtype(dtype).newbyteorder(">" if big else "<")).view(np.uint8).reshape(h, -1)
    rows = np.concatenate([rows, np.zeros((h, pad), np.uint8)], axis=1)
    if draw(st.integers(0, 9)) == 0:  # truncate the buffer
        data = rows.tobytes()[: draw(st.integers(0, rows.size))]
    else:
        data = rows.tobytes()
    return Image(header=_header(CAMERA), encoding=encoding, height=h, width=w, is_bigendian=int(big),
                 step=rows.shape[1], data=data)


def images(depth: bool = False) -> st.SearchStrategy[Image]:
    return st.one_of(raw_images(depth), consistent_images(depth))


def png_bytes(width: int, height: int, rows: int = 1) -> bytes:
    """A PNG declaring ``width`` x ``height`` RGB pixels whose data holds only ``rows`` rows: a tiny message
    that would make a decoder allocate width x height x 3 bytes."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(3 * min(width, 64)) for _ in range(rows))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _encoded(rgb: np.ndarray, ext: str) -> bytes:
    import cv2  # here: only compressed strategies need it

    ok, buf = cv2.imencode(ext, rgb)
    return buf.tobytes() if ok else b""


_VALID_JPEG = _encoded(np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8), ".jpg")
_VALID_PNG = _encoded(np.random.default_rng(1).integers(0, 256, (H, W, 3), dtype=np.uint8), ".png")


@st.composite
def compressed_images(draw) -> CompressedImage:
    fmt = draw(st.one_of(st.sampled_from(["jpeg", "png", "rgb8; jpeg compressed bgr8", "16UC1; compressedDepth png",
                                          "", "tiff", "bmp"]), text))
    kind = draw(st.integers(0, 4))
    if kind == 0:
        data = draw(st.binary(max_size=2048))
    elif kind == 1:  # a valid image, truncated or with bytes flipped
        data = bytearray(draw(st.sampled_from([_VALID_JPEG, _VALID_PNG])))
        for _ in range(draw(st.integers(0, 8))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        data = bytes(data[: draw(st.integers(0, len(data)))])
    elif kind == 2:  # a decompression bomb: a tiny message declaring a huge image
        data = png_bytes(draw(st.sampled_from([20000, 65535, 2**31 - 1])), draw(st.sampled_from([20000, 65535, 7])))
    else:
        data = draw(st.sampled_from([_VALID_JPEG, _VALID_PNG]))
    return CompressedImage(header=_header(draw(frame_ids), draw(stamps)), format=fmt, data=data)


# ------------------------------------------------------------------------------------------ camera_info
def pinhole_k(fx: float, fy: float, cx: float, cy: float) -> list[float]:
    return [fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]


@st.composite
def camera_infos(draw) -> CameraInfo:
    if draw(st.booleans()):
        k = pinhole_k(draw(any_float), draw(any_float), draw(any_float), draw(any_float))
    else:
        k = draw(st.lists(any_float, min_size=9, max_size=9))
    size = draw(st.one_of(st.just((W, H)), st.tuples(dimension, dimension)))
    d = draw(st.one_of(st.just([0.0] * 5), st.lists(any_float, max_size=14)))
    return CameraInfo(header=_header(draw(frame_ids), draw(stamps)), width=size[0], height=size[1], k=k, d=d,
                      distortion_model=draw(st.sampled_from(["plumb_bob", "", "equidistant"])))


def valid_camera(stamp: Time) -> tuple[Image, Image, CameraInfo]:
    """A small good RGB-D frame (a wall 2 m ahead) in the optical frame CAMERA."""
    rgb = np.random.default_rng(2).integers(0, 256, (H, W, 3), dtype=np.uint8)
    header = _header(CAMERA, stamp)
    image = Image(header=header, encoding="rgb8", height=H, width=W, step=3 * W, data=rgb.tobytes())
    depth = Image(header=header, encoding="32FC1", height=H, width=W, step=4 * W,
                  data=np.full((H, W), 2.0, np.float32).tobytes())
    info = CameraInfo(header=header, width=W, height=H, k=pinhole_k(30.0, 30.0, 15.5, 11.5), d=[0.0] * 5,
                      distortion_model="plumb_bob")
    return image, depth, info


# ------------------------------------------------------------------------------------------ paths and goals
unit_quaternions = st.tuples(finite, finite, finite, finite).filter(lambda q: np.linalg.norm(q) > 1e-3).map(
    lambda q: tuple(float(v) for v in np.asarray(q) / np.linalg.norm(q)))
quaternions = st.one_of(unit_quaternions, unit_quaternions, st.just((0.0, 0.0, 0.0, 0.0)),
                        st.tuples(any_float, any_float, any_float, any_float))


@st.composite
def poses(draw, step: int = 0) -> Pose:
    x, y, z = (draw(st.one_of(st.just(0.1 * step), finite, any_float)) for _ in range(3))
    qx, qy, qz, qw = draw(quaternions)
    return Pose(position=Point(x=x, y=y, z=z), orientation=Quaternion(x=qx, y=qy, z=qz, w=qw))


def straight_pose(step: int) -> Pose:
    return Pose(position=Point(x=0.1 * step), orientation=Quaternion(w=1.0))


@st.composite
def paths(draw, max_poses: int = 12) -> Path:
    header = _header(draw(st.one_of(st.sampled_from([FIXED, FIXED, BASE]), frame_ids)))
    n = draw(st.one_of(st.sampled_from([0, 1, 2]), st.integers(0, max_poses)))
    well_formed = draw(st.booleans())  # half the paths are valid, so requests also reach generation
    items = [straight_pose(i) if well_formed else draw(poses(i)) for i in range(n)]
    return Path(header=header, poses=[PoseStamped(header=header, pose=p) for p in items])


def long_path(n: int) -> Path:
    """A valid straight path of ``n`` poses (100 000 in the fuzz test)."""
    header = _header(FIXED)
    return Path(header=header, poses=[PoseStamped(header=header, pose=straight_pose(i)) for i in range(n)])


#: Path ids the node accepts or names (empty = "path_<i>"). Ids with spaces or slashes, and repeated ids, are
#: refused with the request naming ``paths[i].id`` (test_fuzz_callbacks.py); benchmarks/fuzz_node.py sends them
#: too and counts any escape to the node's catch-all (``request.failed``).
path_ids = st.from_regex(r"[A-Za-z0-9_.-]{0,12}", fullmatch=True)
def _candidate_paths(ids: st.SearchStrategy[str]) -> st.SearchStrategy[CandidatePaths]:
    return st.builds(lambda items: CandidatePaths(paths=[CandidatePath(id=i, path=p) for i, p in items]),
                     st.lists(st.tuples(ids, paths()), max_size=3))


candidate_paths = _candidate_paths(path_ids).filter(lambda m: len({p.id for p in m.paths if p.id}) == len(
    [p for p in m.paths if p.id]))
#: any id text, repeats included: what a hostile publisher sends
hostile_candidate_paths = _candidate_paths(st.one_of(text, st.sampled_from(["a", "a", "left turn", "a/b"])))
goals = st.builds(lambda items, frames, snap: Imagine.Goal(paths=[CandidatePath(id=i, path=p) for i, p in items],
                                                            frames_per_path=frames, new_snapshot=snap),
                  st.lists(st.tuples(text, paths()), max_size=3),
                  st.one_of(st.integers(0, 8), st.sampled_from([10_000, 2**31, UINT32])), st.booleans())


# ------------------------------------------------------------------------------------------ the node
def node_parameters() -> list:
    """imagination_node overrides for fuzzing: tiny views, no TF waiting, two views per path."""
    from rclpy.parameter import Parameter

    return [Parameter("fixed_frame", value=FIXED), Parameter("base_frame", value=BASE),
            Parameter("frames_per_path", value=2), Parameter("image_width", value=W),
            Parameter("image_height", value=H), Parameter("tf_timeout_s", value=0.0),
            Parameter("sync_tolerance_s", value=0.0), Parameter("local_rate_hz", value=0.0),
            Parameter("diagnostics_period_s", value=60.0)]


class NodeHarness:
    """An in-process imagination_node with TF map -> base_link -> fuzz_camera set directly in its tree."""

    #: the catch-all key of an exception that no check named: a bug, never acceptable
    UNNAMED = "request.failed"

    def __init__(self, strict: bool = True) -> None:
        """``strict``: an input reaching the catch-all fails at once (tests); otherwise it is counted in
        :attr:`escapes` by its message and the run goes on (benchmarks/fuzz_node.py)."""
        from worldstereo_ros.ros.imagination_node import ImaginationNode

        self.strict = strict
        self.escapes: dict[str, int] = {}

        self.node = ImaginationNode(parameter_overrides=node_parameters())
        T_base_cam = np.array([[0.0, 0.0, 1.0, 0.1], [-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.4], [0, 0, 0, 1.0]])
        tree = self.node.tf.tree  # the builtin tree (no tf2_ros in the wheels); set directly, no DDS needed
        tree.set_transform(FIXED, BASE, np.eye(4), 0, True)
        tree.set_transform(BASE, CAMERA, T_base_cam, 0, True)
        self._stamp_ns = 1_000_000_000
        self.inputs: dict[str, int] = {}

    def next_stamp(self) -> Time:
        self._stamp_ns += 10_000_000
        return Time(sec=self._stamp_ns // 10**9, nanosec=self._stamp_ns % 10**9)

    def outcomes(self) -> int:
        """Successes plus counted rejections so far."""
        stats, problems = self.node.stats, self.node.problems
        return stats["snapshots"] + stats["requests_done"] + stats["cancelled"] + problems.total()

    def wait_idle(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.node._requests.busy:
            if time.monotonic() > deadline:
                raise AssertionError(f"imagination_node's worker still busy after {timeout_s} s")
            time.sleep(0.002)

    def count(self, callback: str) -> None:
        self.inputs[callback] = self.inputs.get(callback, 0) + 1

    def camera(self, image, depth, info, restamp: bool = True) -> None:
        """Feed a triple through ``_on_camera`` (same fresh stamp unless ``restamp`` is false), then ask for
        a snapshot, which converts it; wait until the snapshot is taken or rejected."""
        if restamp:
            stamp = self.next_stamp()
            for m in (image, depth, info):
                m.header.stamp = stamp
        for stream, msg in (("image", image), ("depth", depth), ("camera_info", info)):
            self.node._on_camera(stream, msg)
            self.count(f"_on_camera.{stream}")
        self.snapshot()

    def snapshot(self) -> None:
        from std_srvs.srv import Trigger

        before = self.outcomes()
        self.node._on_take_snapshot(Trigger.Request(), Trigger.Response())
        self.wait_idle()
        self._check(before, "a snapshot")

    def good_snapshot(self) -> None:
        self.camera(*valid_camera(self.next_stamp()))

    def request(self, callback: str, msg) -> None:
        before = self.outcomes()
        getattr(self.node, callback)(msg)
        self.count(callback)
        self.wait_idle()
        self._check(before, callback)

    def goal(self, goal) -> bool:
        from rclpy.action import GoalResponse

        before = self.node.problems.total()
        accepted = self.node._on_goal(goal) == GoalResponse.ACCEPT
        self.count("_on_goal")
        if not accepted:
            assert self.node.problems.total() > before, "a goal was rejected without a counted, named reason"
        return accepted

    def _check(self, before: int, what: str) -> None:
        assert self.outcomes() > before, f"{what} ended neither in a success nor in a counted rejection"
        unnamed = self.node.problems.count(self.UNNAMED)
        if unnamed > sum(self.escapes.values()):
            last = {kv.key: kv.value for kv in self.node.problems.status("fuzz", "fuzz", {}).values}
            message = last.get(f"problem.{self.UNNAMED}.last", "?")
            assert not self.strict, f"{what}: an exception no check named reached the catch-all: {message}"
            self.escapes[message] = self.escapes.get(message, 0) + unnamed - sum(self.escapes.values())

    def rejections(self) -> dict[str, int]:
        return dict(self.node.problems.counters)

    def close(self) -> None:
        self.node.destroy_node()


def rss_bytes() -> int:
    import psutil  # here: only the memory checks need it

    return psutil.Process().memory_info().rss

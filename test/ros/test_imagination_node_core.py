"""imagination_node in this process (issue 14, items 1, 2, 3 and 6): goal limits and the bounded queue,
the take_snapshot service answering at once, shutdown failing queued goals within a bounded time, the
snapshot stamp on every view, live timer parameters, and the state saved and restored.

The node spins on a MultiThreadedExecutor sized like ``main`` sizes it; the test's peer (goals, camera,
service calls) spins on its own thread. Every wait has a generous deadline and says what did not arrive.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy not installed (run scripts/setup.sh)")
import torch  # noqa: E402
from action_msgs.msg import GoalStatus  # noqa: E402
from rclpy.action import ActionClient  # noqa: E402
from rclpy.executors import MultiThreadedExecutor  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402
from test_imagination_node import Camera, Peer, _straight_path  # noqa: E402

from worldstereo_ros.action import Imagine  # noqa: E402
from worldstereo_ros.errors import ConfigError  # noqa: E402
from worldstereo_ros.msg import CandidatePath  # noqa: E402
from worldstereo_ros.ros.imagination_node import ImaginationNode, executor_threads  # noqa: E402
from worldstereo_ros.ros.imagination_state import BANK_FILE, CACHE_FILE  # noqa: E402

torch.set_num_threads(1)
BASE = {"fixed_frame": "map", "base_frame": "base_link", "sync_tolerance_s": 0.001, "tf_timeout_s": 0.5,
        "diagnostics_period_s": 0.2, "queue_size": 2}


class Running:
    """An ImaginationNode with ``params`` spun on its own MultiThreadedExecutor thread."""

    def __init__(self, **params) -> None:
        values = {**BASE, **params}
        self.node = ImaginationNode(parameter_overrides=[Parameter(k, value=v) for k, v in values.items()])
        self.executor = MultiThreadedExecutor(num_threads=executor_threads(values["queue_size"]))
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()
        self.destroyed = False

    def destroy(self) -> float:
        """destroy_node while the executor still spins (results still reach clients); seconds it took."""
        t0 = time.monotonic()
        self.node.destroy_node()
        self.destroyed = True
        return time.monotonic() - t0

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=5.0)
        if not self.destroyed:
            self.node.destroy_node()


@pytest.fixture()
def peer():
    p = Peer()
    yield p
    p.close()


def _hold_worker(node: ImaginationNode) -> threading.Event:
    """Make every request the worker runs wait until it is cancelled or the returned event is set, as a long
    inference that honours cancel would; returns that event."""
    release = threading.Event()
    started = threading.Event()

    def slow_run(request):
        started.set()
        while not (release.is_set() or request.cancel.is_set()):
            request.cancel.wait(0.05)
        request.result.update(success=False, cancelled=request.cancel.is_set(),
                              message="cancelled: the node is shutting down" if request.result.get("stopping")
                              else "released")

    node._run = slow_run
    release.started = started
    return release


def _goal(cam: Camera, frames: int = 3, paths: int = 1, poses: int = 3) -> Imagine.Goal:
    path, _ = _straight_path(cam.T_world_base, 0.3, poses)
    return Imagine.Goal(paths=[CandidatePath(id=f"p{i}", path=path) for i in range(paths)], frames_per_path=frames,
                        new_snapshot=False)


def _send(peer: Peer, client: ActionClient, goal: Imagine.Goal):
    fut = client.send_goal_async(goal)
    assert peer.wait(fut.done, 30.0), "no answer to the goal request"
    return fut.result()


def test_goals_beyond_limits_or_queue_are_rejected_with_a_reason(peer):
    run = Running(queue_size=1, max_paths_per_request=4, max_poses_per_path=50)
    cam = Camera(peer)
    client = ActionClient(peer.node, Imagine, "imagine")
    try:
        assert peer.wait(client.server_is_ready, 30.0), "imagine action not found"
        t0 = time.monotonic()
        handle = _send(peer, client, _goal(cam, frames=10_000))
        refused_s = time.monotonic() - t0
        assert not handle.accepted
        assert run.node.problems.count("goal.frames_per_path") == 1
        assert not _send(peer, client, _goal(cam, paths=5)).accepted
        assert not _send(peer, client, _goal(cam, poses=51)).accepted
        assert {"goal.too_many_paths", "goal.too_many_poses"} <= set(run.node.problems.counters)
        # the queue: one running, queue_size=1 waiting, the next one is rejected, not silently dropped
        release = _hold_worker(run.node)
        first = _send(peer, client, _goal(cam))
        assert first.accepted and release.started.wait(30.0), "the worker did not start the first goal"
        second = _send(peer, client, _goal(cam))
        third = _send(peer, client, _goal(cam))
        assert second.accepted and not third.accepted
        assert "request queue full" in run.node.problems._entries["goal.refused"].last_message
        release.set()
        for handle in (first, second):
            res = handle.get_result_async()
            assert peer.wait(res.done, 30.0), "no result after the worker was released"
        print(f"10 000-frame goal rejected in {refused_s * 1000:.0f} ms")
    finally:
        run.close()


def test_take_snapshot_answers_at_once_and_refuses_when_full(peer):
    run = Running(queue_size=1)
    client = peer.node.create_client(Trigger, "take_snapshot")
    try:
        assert client.wait_for_service(timeout_sec=30.0), "take_snapshot service not found"
        release = _hold_worker(run.node)
        answers = []
        for _ in range(3):  # the first runs (held), the second waits, the third finds the queue full
            t0 = time.monotonic()
            fut = client.call_async(Trigger.Request())
            assert peer.wait(fut.done, 30.0), "take_snapshot did not answer"
            answers.append((fut.result(), time.monotonic() - t0))
            if len(answers) == 1:
                assert release.started.wait(30.0), "the worker did not start the snapshot job"
        (a, _), (b, _), (c, _) = answers
        assert a.success and a.message.startswith("queued") and b.success and b.message.startswith("queued")
        assert not c.success and "request queue full" in c.message
        assert max(t for _, t in answers) < 5.0, answers  # never waits for the worker (it is held)
        release.set()
    finally:
        run.close()


def test_shutdown_aborts_queued_goals_and_joins_the_worker_in_bounded_time(peer):
    run = Running(queue_size=3)
    cam = Camera(peer)
    client = ActionClient(peer.node, Imagine, "imagine")
    try:
        assert peer.wait(client.server_is_ready, 30.0), "imagine action not found"
        release = _hold_worker(run.node)  # never set: only shutdown ends the running goal
        handles = [_send(peer, client, _goal(cam)) for _ in range(4)]
        assert all(h.accepted for h in handles)
        assert release.started.wait(30.0), "the worker did not start the first goal"
        results = [h.get_result_async() for h in handles]
        seconds = run.destroy()
        assert seconds < 10.0, f"destroy_node took {seconds:.1f} s"
        assert not run.node._worker.is_alive(), "the worker thread still runs after destroy_node"
        assert peer.wait(lambda: all(r.done() for r in results), 30.0), "aborted results did not arrive"
        for r in results:
            assert r.result().status == GoalStatus.STATUS_ABORTED
            assert "shutting down" in r.result().result.message
        print(f"shutdown with 1 running + 3 queued goals: destroy_node {seconds:.2f} s")
    finally:
        run.close()


def test_every_view_carries_the_snapshot_stamp(peer):
    run = Running(frames_per_path=4)
    cam = Camera(peer)
    client = ActionClient(peer.node, Imagine, "imagine")
    try:
        assert peer.wait(client.server_is_ready, 30.0), "imagine action not found"
        goal = _goal(cam, frames=4)
        goal.new_snapshot = True
        deadline = time.monotonic() + 60.0
        result = None
        while time.monotonic() < deadline:  # the first camera messages may not have arrived yet
            cam.publish()
            res = _send(peer, client, goal).get_result_async()
            assert peer.wait(res.done, 60.0), "no result"
            result = res.result().result
            if result.success:
                break
        assert result is not None and result.success, result.message
        assert peer.wait(lambda: len(peer.views) >= 4, 30.0), f"{len(peer.views)} of 4 views arrived"
        # one stamp for the whole rollout: the snapshot's, which is the stamp of a camera frame this test sent
        # (the newest one that had arrived when the worker took the snapshot, not necessarily the last sent)
        stamps = {(v.header.stamp.sec, v.header.stamp.nanosec) for v in peer.views}
        snapshot_ns = run.node._snapshot.stamp_ns
        assert stamps == {divmod(snapshot_ns, 10**9)}, (stamps, snapshot_ns)
        assert stamps <= set(cam.stamps), (stamps, cam.stamps[-3:])
        assert all((v.rgb.header.stamp.sec, v.rgb.header.stamp.nanosec) in stamps for v in peer.views)
    finally:
        run.close()


def test_timer_parameters_take_effect_and_start_up_ones_are_read_only(peer):
    run = Running(diagnostics_period_s=1.0, local_rate_hz=2.0)
    node = run.node
    try:
        assert peer.wait(lambda: len(peer.diagnostics) >= 1, 30.0), "no /diagnostics"
        start, t0 = len(peer.diagnostics), time.monotonic()
        assert peer.wait(lambda: len(peer.diagnostics) >= start + 2, 30.0), "diagnostics stopped"
        slow_rate = 2 / (time.monotonic() - t0)
        assert node.set_parameters([Parameter("diagnostics_period_s", value=0.1)])[0].successful
        start, t0 = len(peer.diagnostics), time.monotonic()
        assert peer.wait(lambda: len(peer.diagnostics) >= start + 10, 30.0), "diagnostics stopped after the set"
        fast_rate = 10 / (time.monotonic() - t0)
        assert fast_rate > 2 * slow_rate, (slow_rate, fast_rate)
        assert node._param_timers["local_rate_hz"].timer_period_ns == 500_000_000
        assert node.set_parameters([Parameter("local_rate_hz", value=0.0)])[0].successful
        assert "local_rate_hz" not in node._param_timers
        assert node.set_parameters([Parameter("snapshot_period_s", value=5.0)])[0].successful
        assert node._param_timers["snapshot_period_s"].timer_period_ns == 5_000_000_000
        assert node.set_parameters([Parameter("sync_tolerance_s", value=0.05)])[0].successful
        assert node.sync.tolerance_ns == 50_000_000
        assert node.set_parameters([Parameter("problem_window_s", value=2.0)])[0].successful
        assert node.problems.window_s == 2.0
        # read-only: refused by rclpy, with the value unchanged
        for name, value in (("queue_size", 5), ("voxel_size_m", 0.05), ("state_dir", "x")):
            assert not node.set_parameters([Parameter(name, value=value)])[0].successful, name
        assert node.p["queue_size"] == 2
        # a limit is enforced on live values too
        refused = node.set_parameters([Parameter("max_frames_per_path", value=10)])[0]
        assert not refused.successful and "frames_per_path" in refused.reason
    finally:
        run.close()


def test_diagnostics_return_to_ok_when_problems_stop(peer):
    from diagnostic_msgs.msg import DiagnosticStatus

    run = Running(problem_window_s=1.0)
    try:
        run.node.problems.report("test.problem", "a problem the test reports")
        assert peer.wait(lambda: any(d.status[0].level == DiagnosticStatus.WARN for d in peer.diagnostics), 30.0), \
            "no WARN after a problem"
        seen = len(peer.diagnostics)
        assert peer.wait(lambda: len(peer.diagnostics) > seen and
                         peer.diagnostics[-1].status[0].level == DiagnosticStatus.OK, 30.0), "never back to OK"
        values = {kv.key: kv.value for kv in peer.diagnostics[-1].status[0].values}
        assert values["problem.test.problem.count"] == "1"  # the history stays
    finally:
        run.close()


def test_state_is_saved_and_restored_and_a_corrupt_file_starts_empty(peer, tmp_path):
    state = tmp_path / "state"
    params = dict(state_dir=str(state), allowed_roots=[str(tmp_path)], frames_per_path=3)
    run = Running(**params)
    cam = Camera(peer)
    client = ActionClient(peer.node, Imagine, "imagine")
    save = peer.node.create_client(Trigger, "save_state")
    try:
        assert peer.wait(client.server_is_ready, 30.0) and save.wait_for_service(timeout_sec=30.0), "node not up"
        fut = save.call_async(Trigger.Request())
        assert peer.wait(fut.done, 30.0) and not fut.result().success  # nothing to save yet
        deadline, result = time.monotonic() + 60.0, None
        goal = _goal(cam)
        goal.new_snapshot = True
        while time.monotonic() < deadline and not (result and result.success):
            cam.publish()
            res = _send(peer, client, goal).get_result_async()
            assert peer.wait(res.done, 60.0), "no result"
            result = res.result().result
        assert result.success, result.message
        fut = save.call_async(Trigger.Request())
        assert peer.wait(fut.done, 30.0) and fut.result().success, fut.result().message
        points = len(run.node._pipeline.cache)
        keyframes = len(run.node._pipeline.bank)
    finally:
        run.close()
    assert (state / CACHE_FILE).is_file() and (state / BANK_FILE).is_file()
    restored = Running(**params, restore_on_start=True)
    try:
        cache, bank = restored.node._restored_memories
        assert (len(cache), len(bank)) == (points, keyframes) and points > 0
        xyz, _ = restored.node.cache_cloud()  # published before any snapshot
        assert xyz.shape[0] > 0
    finally:
        restored.close()
    # saved with another voxel size: the first snapshot starts over, saying why, instead of failing forever
    other = Running(**{**params, "voxel_size_m": 0.05}, restore_on_start=True)
    try:
        deadline, result = time.monotonic() + 60.0, None
        while time.monotonic() < deadline and not (result and result.success):
            cam.publish()
            res = _send(peer, client, goal).get_result_async()
            assert peer.wait(res.done, 60.0), "no result"
            result = res.result().result
        assert result.success, result.message
        assert other.node.problems.count("state.restore") == 1
        assert "voxel size" in other.node.problems._entries["state.restore"].last_message
    finally:
        other.close()
    data = (state / BANK_FILE).read_bytes()
    (state / BANK_FILE).write_bytes(data[: len(data) // 2])  # truncated, as by a kill mid-copy
    empty = Running(**params, restore_on_start=True)
    try:
        assert empty.node._restored_memories is None
        assert empty.node.problems.count("state.restore") == 1
        assert BANK_FILE in empty.node.problems._entries["state.restore"].last_message
    finally:
        empty.close()


def test_state_dir_outside_the_allowed_roots_refuses_the_start(peer, tmp_path):
    with pytest.raises(ConfigError, match="state_dir: .*outside the allowed roots"):
        ImaginationNode(parameter_overrides=[Parameter("state_dir", value=str(tmp_path / ".." / "elsewhere")),
                                             Parameter("allowed_roots", value=[str(tmp_path)])])


def test_node_reads_of_the_cache_stay_consistent_while_the_worker_merges(peer):
    """The node's own read path (_current_cache, then radius query and arrays of that one state) against
    merges on another thread: every returned point lies within the radius (issue 14: 35 of 276 did not)."""
    from worldstereo_ros.datasets.procedural_scene import procedural_snapshot
    from worldstereo_ros.pipeline import ImaginationPipeline, PipelineConfig

    run = Running(local_rate_hz=0.0)
    node = run.node
    pipeline = ImaginationPipeline(PipelineConfig(voxel_size_m=0.02)).initialize(procedural_snapshot(64, 48))
    with node._lock:
        node._pipeline = pipeline
    stop, bad, reads = threading.Event(), [], [0]

    def merge():
        rng = np.random.default_rng(0)
        while not stop.is_set():
            pipeline.cache.merge(torch.as_tensor(rng.uniform(-3, 3, (5000, 3)), dtype=torch.float32))

    writer = threading.Thread(target=merge, daemon=True)
    writer.start()
    try:
        center = torch.zeros(3)
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            cache = node._current_cache()
            idx = cache.radius_query(center, 1.0)
            xyz = cache.xyz[idx]
            reads[0] += 1
            if xyz.shape[0] and float(xyz.norm(dim=1).max()) > 1.0 + 1e-5:
                bad.append(float(xyz.norm(dim=1).max()))
    finally:
        stop.set()
        writer.join(10.0)
        run.close()
    assert reads[0] > 10 and not bad, f"{len(bad)} of {reads[0]} reads returned points outside the radius"


def test_cancelling_a_queued_goal_ends_it_at_once(peer):
    run = Running(queue_size=2)
    cam = Camera(peer)
    client = ActionClient(peer.node, Imagine, "imagine")
    try:
        assert peer.wait(client.server_is_ready, 30.0), "imagine action not found"
        release = _hold_worker(run.node)
        running = _send(peer, client, _goal(cam))
        assert running.accepted and release.started.wait(30.0), "the worker did not start the first goal"
        queued = _send(peer, client, _goal(cam))
        assert queued.accepted
        cancel = queued.cancel_goal_async()
        assert peer.wait(cancel.done, 30.0), "no answer to the cancel"
        res = queued.get_result_async()
        assert peer.wait(res.done, 30.0), "the cancelled queued goal did not end while another one runs"
        assert res.result().status == GoalStatus.STATUS_CANCELED
        assert res.result().result.message == "cancelled before it ran"
        assert not running.get_result_async().done()  # the running goal was left alone
        release.set()
    finally:
        run.close()


def test_state_is_saved_periodically_when_it_changed(peer, tmp_path):
    run = Running(state_dir=str(tmp_path / "s"), allowed_roots=[str(tmp_path)], save_period_s=0.2)
    cam = Camera(peer)
    client = ActionClient(peer.node, Imagine, "imagine")
    try:
        assert peer.wait(client.server_is_ready, 30.0), "imagine action not found"
        assert not peer.wait(lambda: run.node.stats["state_saved"] > 0, 1.0)  # nothing to save yet
        assert run.node.problems.count("state.save") == 0  # and that is no problem
        goal = _goal(cam)
        goal.new_snapshot = True
        deadline, result = time.monotonic() + 60.0, None
        while time.monotonic() < deadline and not (result and result.success):
            cam.publish()
            res = _send(peer, client, goal).get_result_async()
            assert peer.wait(res.done, 60.0), "no result"
            result = res.result().result
        assert result.success, result.message
        assert peer.wait(lambda: (tmp_path / "s" / CACHE_FILE).is_file() and (tmp_path / "s" / BANK_FILE).is_file(),
                         30.0), "the periodic save wrote nothing"
        saved = run.node.stats["state_saved"]
        assert not peer.wait(lambda: run.node.stats["state_saved"] > saved + 1, 1.5)  # unchanged: not re-saved
    finally:
        run.close()

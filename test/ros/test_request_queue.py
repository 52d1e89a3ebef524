"""The imagination node's request queue and busy policy, without rclpy (issue 15: rclpy-free modules)."""

from __future__ import annotations

import threading

import pytest

from worldstereo_ros.errors import InputError
from worldstereo_ros.ros.request_queue import ImagineRequest, RequestQueue


def _req(name: str) -> ImagineRequest:
    return ImagineRequest([(name, None)], 5)


def test_requests_run_in_order_and_finish_sets_done():
    q = RequestQueue()
    a, b = _req("a"), _req("b")
    assert q.submit(a, "queue", 4) == [] and q.submit(b, "queue", 4) == []
    assert len(q) == 2 and q.busy and not q.running
    assert q.take(0.1) is a and q.running and len(q) == 1
    assert not a.done.is_set()
    q.finish(a)
    assert a.done.is_set() and not q.running
    assert q.take(0.1) is b
    q.finish(b)
    assert not q.busy and q.take(0.01) is None  # nothing to do: the timeout passes


def test_queue_policy_drops_the_oldest_waiting_request_when_full():
    q = RequestQueue()
    running = _req("running")
    q.submit(running, "queue", 2)
    assert q.take(0.1) is running
    waiting = [_req(f"w{i}") for i in range(3)]
    assert q.submit(waiting[0], "queue", 2) == [] and q.submit(waiting[1], "queue", 2) == []
    dropped = q.submit(waiting[2], "queue", 2)
    assert dropped == [waiting[0]] and waiting[0].done.is_set()
    assert waiting[0].result == {"success": False, "message": "dropped: request queue full"}
    assert not running.cancel.is_set()  # the running request is never touched by the queue policy
    q.finish(running)
    assert [q.take(0.1), q.take(0.1)] == waiting[1:]


def test_preempt_policy_cancels_the_running_and_drops_the_waiting():
    q = RequestQueue()
    running, waiting, newest = _req("running"), _req("waiting"), _req("newest")
    q.submit(running, "preempt", 4)
    assert q.take(0.1) is running
    q.submit(waiting, "queue", 4)
    assert q.submit(newest, "preempt", 4) == [waiting]
    assert running.cancel.is_set() and running.result["preempted"] is True and not running.done.is_set()
    assert waiting.done.is_set() and waiting.result["message"] == "preempted by a newer request"
    q.finish(running)
    assert q.take(0.1) is newest and len(q) == 0


def test_stop_wakes_a_waiting_worker_and_refuses_new_work():
    q = RequestQueue()
    got = []
    worker = threading.Thread(target=lambda: got.append(q.take()))
    worker.start()
    q.stop()
    worker.join(timeout=5.0)
    assert not worker.is_alive() and got == [None]
    late = _req("late")
    assert q.submit(late, "queue", 4) == [] and late.done.is_set() and late.result["success"] is False


def test_stop_cancels_the_running_request_and_ends_the_waiting_ones():
    q = RequestQueue()
    running, waiting = _req("running"), _req("waiting")
    q.submit(running, "queue", 4)
    q.take(0.1)
    q.submit(waiting, "queue", 4)
    q.stop()
    assert running.cancel.is_set() and waiting.done.is_set() and q.take(0.1) is None


@pytest.mark.parametrize("policy, size, match", [("fifo", 4, "busy_policy: expected one of queue, preempt"),
                                                 ("queue", 0, "queue_size: expected an int >= 1"),
                                                 ("queue", True, "queue_size")])
def test_bad_policy_or_size(policy, size, match):
    with pytest.raises(InputError, match=match):
        RequestQueue().submit(_req("a"), policy, size)


def test_offer_refuses_instead_of_dropping_when_the_queue_is_full():
    q = RequestQueue()
    running, waiting, extra = _req("running"), _req("waiting"), _req("extra")
    assert q.offer(running, "queue", 1) is None and q.take(0.1) is running
    assert q.offer(waiting, "queue", 1) is None
    reason = q.offer(extra, "queue", 1)
    assert "request queue full" in reason and "queue_size=1" in reason
    assert not extra.done.is_set() and not waiting.done.is_set() and len(q) == 1  # nobody was dropped
    # preempt: an offer always goes through and stops the running one, like submit
    assert q.offer(extra, "preempt", 1) is None
    assert running.cancel.is_set() and running.result["preempted"] and waiting.done.is_set()
    q.stop()
    assert running.result["stopping"] and extra.done.is_set()
    assert q.offer(_req("late"), "queue", 1) == "the node is shutting down"
    with pytest.raises(InputError, match="queue_size"):
        q.offer(_req("bad"), "queue", 0)


def test_withdraw_ends_a_waiting_request_but_not_the_running_one():
    q = RequestQueue()
    running, waiting, twin = _req("running"), _req("same"), _req("same")
    for r in (running, waiting, twin):
        q.submit(r, "queue", 4)
    assert q.take(0.1) is running
    assert not q.withdraw(running, "cancelled before it ran")  # it runs: cancel it through its event
    assert q.withdraw(twin, "cancelled before it ran")  # by identity: the equal-looking one stays
    assert twin.done.is_set() and twin.result == {"cancelled": True, "success": False,
                                                  "message": "cancelled before it ran"}
    assert not waiting.done.is_set() and len(q) == 1
    assert not q.withdraw(twin, "again")


def test_a_topic_request_never_drops_an_accepted_goal():
    q = RequestQueue()
    running, goal, topic_a, topic_b = _req("running"), _req("goal"), _req("topic_a"), _req("topic_b")
    q.submit(running, "queue", 2)
    assert q.take(0.1) is running
    assert q.offer(goal, "queue", 2) is None and goal.promised
    assert q.submit(topic_a, "queue", 2) == []
    # full: the oldest *topic* request gives way, not the older goal
    assert q.submit(topic_b, "queue", 2) == [topic_a] and not goal.done.is_set()
    # only promised requests wait and the queue is full: the newcomer is dropped itself
    q2 = RequestQueue()
    q2.submit(_req("r"), "queue", 1)
    q2.take(0.1)
    promised, newcomer = _req("p"), _req("n")
    assert q2.offer(promised, "queue", 1) is None
    assert q2.submit(newcomer, "queue", 1) == [newcomer]
    assert newcomer.done.is_set() and "accepted goals" in newcomer.result["message"]
    assert not promised.done.is_set() and len(q2) == 1

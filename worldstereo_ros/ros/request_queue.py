"""The imagination node's work queue and its busy policy, without rclpy (unit-tested on its own).

Requests arrive from executor callbacks (topics, the ``imagine`` action, the snapshot service and timer) and
run one at a time on a worker thread. When a request arrives while the worker is busy, ``busy_policy``
decides:

- ``queue``: it waits; when ``queue_size`` requests already wait, the oldest waiting *topic* request is
  dropped (finished with ``success=False``), so a burst keeps the newest work; when every waiting request was
  accepted through :meth:`RequestQueue.offer` (a goal or a service call, promised to run), the new topic
  request is dropped instead.
- ``preempt``: the running request is asked to stop (its ``cancel`` event is set and it is marked
  ``preempted``) and every waiting request is dropped; the new one runs next.

Requests that must not silently displace others (``imagine`` goals, the ``take_snapshot`` service) go
through :meth:`RequestQueue.offer` instead: under ``queue`` it refuses a request that finds ``queue_size``
requests already waiting (the caller rejects the goal or answers the service with the reason), so a
client always learns at once whether its work will run.

Every request ends with ``done`` set, whether it ran, was dropped or the queue stopped.
"""

from __future__ import annotations

import collections
import threading
from dataclasses import dataclass, field

from worldstereo_ros.errors import InputError, WorldStereoError

BUSY_POLICIES = ("queue", "preempt")


def _check_policy(busy_policy: str, queue_size: int) -> None:
        if busy_policy not in BUSY_POLICIES:
            raise InputError("busy_policy", f"expected one of {', '.join(BUSY_POLICIES)}, got {busy_policy!r}")
        if isinstance(queue_size, bool) or not isinstance(queue_size, int) or queue_size < 1:
            raise InputError("queue_size", f"expected an int >= 1, got {queue_size!r}")


class RequestError(WorldStereoError):
    """A request that cannot run (bad path, no snapshot, missing TF): reported, never raised out of a callback.

    ``key`` names the problem for the diagnostics (e.g. ``"path.empty"``, ``"tf.path"``).
    """

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass
class ImagineRequest:
    """One unit of work for the worker.

    Attributes:
        paths: (path id, nav_msgs/Path) pairs to imagine, in order; empty for a snapshot-only request.
        frames_per_path: views per path (>= 1 when there are paths).
        new_snapshot: take a new snapshot before imagining.
        goal_handle: the action goal this request serves, or None.
        promised: accepted through :meth:`RequestQueue.offer`: only a preempt or shutdown may drop it.
        cancel: set to ask the running request to stop.
        done: set once the request has finished, whatever the outcome.
        result: outcome fields (``success``, ``message``, ``path_ids``, ...), filled by whoever ends it.
        feedback: the latest progress message for the action (only the newest is kept).
    """

    paths: list[tuple[str, object]]
    frames_per_path: int
    new_snapshot: bool = False
    goal_handle: object | None = None
    promised: bool = False
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    result: dict = field(default_factory=dict)
    feedback: collections.deque = field(default_factory=lambda: collections.deque(maxlen=1))

    def drop(self, message: str) -> None:
        """End the request unrun: ``success=False`` with ``message``, ``done`` set."""
        self.result.update(success=False, message=message)
        self.done.set()


class RequestQueue:
    """Thread-safe queue of :class:`ImagineRequest` with one running slot (module doc)."""

    def __init__(self) -> None:
        self._waiting: collections.deque[ImagineRequest] = collections.deque()
        self._cond = threading.Condition()
        self._current: ImagineRequest | None = None
        self._stopping = False

    def __len__(self) -> int:
        """Requests waiting (the running one not counted)."""
        with self._cond:
            return len(self._waiting)

    @property
    def busy(self) -> bool:
        """True while a request runs or waits."""
        with self._cond:
            return self._current is not None or bool(self._waiting)

    @property
    def running(self) -> bool:
        """True while a request runs."""
        with self._cond:
            return self._current is not None

    def submit(self, request: ImagineRequest, busy_policy: str, queue_size: int) -> list[ImagineRequest]:
        """Queue ``request`` under ``busy_policy`` (``"queue"`` or ``"preempt"``) with at most ``queue_size``
        (>= 1) waiting; returns the waiting requests it dropped (already finished). After :meth:`stop` the
        request itself is dropped."""
        _check_policy(busy_policy, queue_size)
        with self._cond:
            if self._stopping:
                request.drop("the node is shutting down")
                return []
            return self._submit_locked(request, busy_policy, queue_size)

    def _submit_locked(self, request: ImagineRequest, busy_policy: str, queue_size: int) -> list[ImagineRequest]:
        """:meth:`submit` with ``self._cond`` held by the caller."""
        dropped: list[ImagineRequest] = []
        if busy_policy == "preempt":
            if self._current is not None:
                self._current.result["preempted"] = True
                self._current.cancel.set()
            while self._waiting:
                dropped.append(self._waiting.popleft())
            for r in dropped:
                r.drop("preempted by a newer request")
        elif len(self._waiting) >= queue_size:
            victim = next((r for r in self._waiting if not r.promised), None)
            if victim is None:  # every waiting request was promised to run: the newcomer gives way
                request.drop("dropped: request queue full of accepted goals and service calls")
                return [request]
            self._waiting.remove(victim)
            victim.drop("dropped: request queue full")
            dropped.append(victim)
        self._waiting.append(request)
        self._cond.notify()
        return dropped

    def offer(self, request: ImagineRequest, busy_policy: str, queue_size: int) -> str | None:
        """Queue ``request`` unless that would drop another one: returns None when queued, else the reason it
        was refused (the queue is full under ``queue``, or the node is stopping); a refused request is left
        untouched (``done`` not set). Under ``preempt`` it behaves as :meth:`submit`."""
        _check_policy(busy_policy, queue_size)
        with self._cond:
            if self._stopping:
                return "the node is shutting down"
            if busy_policy == "queue" and len(self._waiting) >= queue_size:
                return (f"request queue full: {len(self._waiting)} request(s) wait behind the running one "
                        f"(queue_size={queue_size})")
            # preempt, or room in the queue: submit() drops nothing here except under preempt
            request.promised = True
            self._submit_locked(request, busy_policy, queue_size)
        return None

    def withdraw(self, request: ImagineRequest, message: str) -> bool:
        """End a waiting ``request`` unrun (``cancelled``, ``message``, ``done`` set); False, and nothing
        changed, when it is not waiting (it runs, or has ended)."""
        with self._cond:
            index = next((i for i, r in enumerate(self._waiting) if r is request), None)  # identity, not ==
            if index is None:
                return False
            del self._waiting[index]
        request.result["cancelled"] = True
        request.drop(message)
        return True

    def take(self, timeout_s: float | None = None) -> ImagineRequest | None:
        """The next request, which becomes the running one; None after :meth:`stop` or when ``timeout_s``
        passed with nothing to do. Call :meth:`finish` when it has run."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._waiting or self._stopping, timeout=timeout_s):
                return None
            if self._stopping:
                return None
            self._current = self._waiting.popleft()
            return self._current

    def finish(self, request: ImagineRequest) -> None:
        """Mark the running ``request`` as ended and set its ``done``."""
        with self._cond:
            if self._current is request:
                self._current = None
        request.done.set()

    def stop(self) -> None:
        """Stop for good: the running request is asked to cancel (marked ``stopping``), waiting ones are
        dropped, :meth:`take` returns None from now on."""
        with self._cond:
            self._stopping = True
            if self._current is not None:
                self._current.result["stopping"] = True
                self._current.cancel.set()
            waiting = list(self._waiting)
            self._waiting.clear()
            self._cond.notify_all()
        for r in waiting:
            r.drop("the node is shutting down")

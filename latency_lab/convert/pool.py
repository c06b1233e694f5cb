"""Conversions in worker processes, before anything is timed.

A full LiteRT profile converts about a thousand single-op programs and builds eight
keras.applications models to plan them; in one process that was two thirds of a
16-minute profile on a 2-core VM. Converting is independent work, so it runs in
worker processes, one per core (up to `MAX_WORKERS`), but only while nothing is being
timed: a conversion on the core beside a timed kernel shares its caches and memory
bandwidth and would bias the timing. Callers therefore submit a batch and wait for it
before they time (`LiteRTRuntime.convert_ahead`, the profiler's waves).

A worker is `python -m latency_lab.convert.pool`, started on first use: a fresh
interpreter with ``KERAS_BACKEND=tensorflow`` (the converter's backend), in a session
of its own (a Ctrl-C stops the parent between batches; it must not kill a worker
mid-task), with TensorFlow's start-up lines hidden when the parent hid its own. Unlike
multiprocessing's ``spawn`` it never re-runs the caller's ``__main__``, so a script
without an ``if __name__ == "__main__"`` guard can still profile. Tasks name a
function of this package and pass it data (op, config, seed), as length-prefixed
pickles on a private pipe between the two processes.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
from typing import Any, Callable, Iterable

from latency_lab.errors import MeasurementError

__all__ = ["ConversionPool", "MAX_WORKERS", "MIN_TASKS_TO_START", "default_workers"]

MAX_WORKERS = 4  # each worker holds a TensorFlow (about 0.6 GB) and one model at a time
# Starting a worker imports TensorFlow (about 6 s here, ~20 single-op conversions):
# fewer tasks than this are not worth starting the workers for.
MIN_TASKS_TO_START = 48
_HEADER = struct.Struct("<Q")


def default_workers() -> int:
    """One worker per core this process may run on, up to MAX_WORKERS."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(MAX_WORKERS, cores))


def _send(f, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    f.write(_HEADER.pack(len(data)) + data)
    f.flush()


def _receive(f) -> Any:
    header = f.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError
    size = _HEADER.unpack(header)[0]
    data = f.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


def _task_function(module: str, name: str) -> Callable:
    if module.split(".", 1)[0] != "latency_lab":
        raise MeasurementError(f"conversion workers run latency_lab functions, not {module}.{name}")
    return getattr(importlib.import_module(module), name)


class _Worker:
    """One worker process and the thread that feeds it tasks from the pool's queue."""

    def __init__(self, tasks: "queue.Queue", quiet: bool):
        to_child_r, to_child_w = os.pipe()
        from_child_r, from_child_w = os.pipe()
        env = dict(os.environ, KERAS_BACKEND="tensorflow")
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        argv = [sys.executable, "-m", "latency_lab.convert.pool", str(to_child_r),
                str(from_child_w)] + (["--quiet"] if quiet else [])
        self.process = subprocess.Popen(argv, env=env, pass_fds=(to_child_r, from_child_w),
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        os.close(to_child_r)
        os.close(from_child_w)
        self._to = os.fdopen(to_child_w, "wb")
        self._from = os.fdopen(from_child_r, "rb")
        self._tasks = tasks
        self.thread = threading.Thread(target=self._feed, daemon=True,
                                       name="latency-lab-conversion")
        self.thread.start()

    def _feed(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                break
            future, fn, args = task
            if not future.set_running_or_notify_cancel():
                continue
            try:
                _send(self._to, (fn.__module__, fn.__name__, args))
                ok, value = _receive(self._from)
            except (EOFError, OSError):
                code = self.process.wait()
                error = MeasurementError(
                    f"a conversion worker process exited (code {code}) while running "
                    f"{fn.__name__}{_short(args)}; its messages, if any, are above. The "
                    "system may have run out of memory: run again (a profile continues "
                    "with --resume), or convert in this process (conversion workers 1).")
                future.set_exception(error)
                self._fail_queued(error)
                self.close()
                return
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        self.close()

    def _fail_queued(self, error: Exception) -> None:
        """A worker died: fail the tasks still queued (the caller stops at the first
        failed result, and the other workers may be dying of the same cause)."""
        while True:
            try:
                task = self._tasks.get_nowait()
            except queue.Empty:
                return
            if task is None:  # a stop meant for another worker
                self._tasks.put(None)
                return
            if task[0].set_running_or_notify_cancel():
                task[0].set_exception(error)

    def close(self) -> None:
        try:
            self._to.close()  # the worker exits at end of input
        except OSError:  # it had died: the pipe is broken
            pass
        self.process.wait()
        self._from.close()


def _short(args: tuple) -> str:
    text = repr(args)
    return f"({text[1:-1][:160]})" if len(text) < 160 else f"({text[1:158]}...)"


class ConversionPool:
    """`workers` processes for conversion work (`submit`, `map`); with one worker or
    fewer, the work runs in this process when submitted (no processes). Close it
    (`with ConversionPool(...)`) to stop the workers."""

    def __init__(self, workers: int | None = None):
        workers = default_workers() if workers is None else workers
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
            raise MeasurementError(
                f"conversion workers must be an integer >= 0 (0 or 1: convert in this "
                f"process), got {workers!r}")
        self.workers = workers
        self._tasks: queue.Queue = queue.Queue()
        self._started: list[_Worker] = []

    def __enter__(self) -> "ConversionPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def parallel(self) -> bool:
        return self.workers > 1

    def worth_it(self, tasks: int) -> bool:
        """Whether `tasks` conversions should go to the workers: the pool is parallel
        and its workers run already, or there are enough tasks to pay for starting
        them (MIN_TASKS_TO_START)."""
        return self.parallel and (bool(self._started) or tasks >= MIN_TASKS_TO_START)

    @property
    def pids(self) -> list[int]:
        """Process ids of the running workers (none before the first task)."""
        return [w.process.pid for w in self._started]

    def submit(self, fn: Callable, *args: Any) -> concurrent.futures.Future:
        """`fn(*args)` in a worker (`fn` a module-level function of latency_lab, `args`
        picklable); in this process, already done, when the pool is not parallel."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        if not self.parallel:
            try:
                future.set_result(fn(*args))
            except Exception as exc:  # noqa: BLE001 - raised again by .result()
                future.set_exception(exc)
            return future
        if not self._started:
            from latency_lab.native_logs import quieted

            self._started = [_Worker(self._tasks, quieted()) for _ in range(self.workers)]
        self._tasks.put((future, fn, args))
        return future

    def map(self, fn: Callable, items: Iterable[tuple]) -> list:
        """[fn(*args) for args in items], run across the workers, in order."""
        return [f.result() for f in [self.submit(fn, *args) for args in items]]

    def close(self) -> None:
        """Stop the workers once the queued tasks are done (cancelled on an error)."""
        while not self._tasks.empty():
            task = self._tasks.get_nowait()
            if task is not None:
                task[0].cancel()
        for _ in self._started:
            self._tasks.put(None)
        for worker in self._started:
            worker.thread.join()
        self._started = []


def _serve(read_fd: int, write_fd: int) -> None:
    """The worker's loop: run tasks until the parent closes the pipe."""
    with os.fdopen(read_fd, "rb") as tasks, os.fdopen(write_fd, "wb") as results:
        while True:
            try:
                module, name, args = _receive(tasks)
            except EOFError:
                return
            try:
                reply = (True, _task_function(module, name)(*args))
            except Exception as exc:  # noqa: BLE001 - sent back, raised in the parent
                reply = (False, exc)
            try:
                _send(results, reply)
            except Exception as exc:  # noqa: BLE001 - a result or error that does not pickle
                _send(results, (False, MeasurementError(
                    f"{name}: its {'result' if reply[0] else 'error'} could not be sent back "
                    f"from the conversion worker ({type(exc).__name__}: {exc}); "
                    f"{'' if reply[0] else 'the error was: ' + repr(reply[1])}")))


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if "--quiet" in sys.argv[3:]:
        from latency_lab.native_logs import quiet_native_logs

        quiet_native_logs()
    _serve(int(sys.argv[1]), int(sys.argv[2]))

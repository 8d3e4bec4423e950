"""Where windows are coded: here, in local worker processes (--jobs), or as Ray tasks on a
cluster (--cluster). Each is a WindowRunner: windows in, their results out in the same order,
so the stream's bytes do not depend on who coded what."""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import multiprocessing
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import replace
from typing import Any

from vcodec.errors import InputError, InputNotVisibleError, VcxError, WorkerError
from vcodec.pipeline.encoder import (
    WindowJob,
    WindowResult,
    WindowRunner,
    encode_window,
    run_here,
)
from vcodec.pipeline.jobs import may_fork

RAY_RETRIES = 3  # a window whose Ray worker or node is lost is tried this many times more
LOCAL_CLUSTER = "local"  # --cluster local: a Ray cluster started for this run on this machine
RAY_OBJECT_STORE_BYTES = 256 << 20  # a local cluster's object store (shipped packets, clips)


def cores() -> int:
    """The cores this process may run on (taskset and cgroups included)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def local_runner(jobs: int, fork: bool = False) -> WindowRunner:
    """``jobs`` worker processes, each coding one window at a time; a stream of a single
    window is coded here, with no process started. A window whose config leaves its threads
    to the encoder (0) gets cores / jobs of them in a worker, every core here. ``fork``: this
    process may fork its workers (see _start_method), else they are spawned."""
    if jobs <= 1:
        return run_here

    def run(windows: Iterator[WindowJob]) -> Iterator[WindowResult]:
        first = list(itertools.islice(windows, 2))
        if len(first) < 2:
            yield from run_here(iter(first))
            return
        share = max(1, cores() // jobs)
        pool = ProcessPoolExecutor(jobs, mp_context=_start_method(fork, first[0]))
        try:
            inflight: deque[Future] = deque()
            for job in itertools.chain(first, windows):
                if not job.config.threads:
                    job = replace(job, config=replace(job.config, threads=share))
                inflight.append(pool.submit(encode_window, job))
                if len(inflight) > jobs:
                    yield _result(inflight.popleft())
            while inflight:
                yield _result(inflight.popleft())
        finally:
            _stop(pool)

    return run


def _start_method(fork: bool, job: WindowJob) -> Any:
    """Fork (workers start at once, every module already imported) where the caller allows
    it (the CLI: a library's caller may have run OpenCV's or torch's pools, and a forked
    child of such a process can hang in them), this process has handled no frames itself
    (jobs.may_fork) and the windows were indexed (no decoder of the input open here); else
    spawn."""
    indexed = job.source is not None and job.source.start_pts is not None
    return multiprocessing.get_context("fork" if fork and indexed and may_fork() else "spawn")


def _result(future: Future) -> WindowResult:
    try:
        return future.result()
    except BrokenProcessPool:
        raise WorkerError("a worker process died while coding a window") from None


def _stop(pool: ProcessPoolExecutor) -> None:
    """Shut the pool down at once: queued windows dropped, running workers ended."""
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        with contextlib.suppress(Exception):
            process.terminate()


def ray_runner(address: str, threads: int) -> WindowRunner:
    """Ray Core tasks on the cluster at ``address`` (``auto``: the one ``ray start`` runs
    here; ``local``: one started for this run), each window a task needing ``threads`` CPUs
    and retried RAY_RETRIES times if its worker or node is lost. Workers read their windows
    from the input's path where they see it (a shared file system): a job is then a few
    hundred bytes. Once one does not, every window goes with its packets (shipped: a few MB
    a window, through Ray's object store). A result is the window's .vcx bytes."""
    if importlib.util.find_spec("ray") is None:
        raise InputError("--cluster needs Ray: pip install 'vcodec[cluster]'")

    def run(windows: Iterator[WindowJob]) -> Iterator[WindowResult]:
        ray, started = connect_ray(address)
        ship = False  # a worker did not see the input: send every window's packets
        try:
            task = ray.remote(max_retries=RAY_RETRIES, num_cpus=max(1, threads))(encode_window)
            capacity = max(1, int(ray.cluster_resources().get("CPU", 1)) // max(1, threads))
            inflight: deque[tuple[WindowJob, Any]] = deque()

            def result() -> WindowResult:
                nonlocal ship
                job, ref = inflight.popleft()
                try:
                    return ray_result(ray, ref)
                except InputNotVisibleError:
                    ship = True
                    return ray_result(ray, task.remote(shipped(job)))

            for job in windows:
                if not job.config.threads:
                    job = replace(job, config=replace(job.config, threads=threads))
                inflight.append((job, task.remote(shipped(job) if ship else job)))
                if len(inflight) > capacity:
                    yield result()
            while inflight:
                yield result()
        finally:
            if started:
                ray.shutdown()

    return run


def shipped(job: WindowJob) -> WindowJob:
    """``job`` with its window's packets (io.excerpt), for a worker that cannot read the input."""
    from vcodec.io import excerpt

    source = job.source
    if source is None or source.start_pts is None:
        raise WorkerError(
            f"{source.path if source else 'the input'} is not visible to the cluster's workers "
            "and has no timestamps to send it by: put it on a shared file system"
        )
    packets = excerpt(source.path, source.start_pts, source.end_pts)
    return replace(job, source=replace(source, excerpt=packets))


def connect_ray(address: str) -> tuple[Any, bool]:
    """Ray, joined to (or, for ``local``, having started) the cluster at ``address``; and
    whether this call did it (then the caller shuts it down)."""
    try:
        import ray
    except ImportError:
        raise InputError("--cluster needs Ray: pip install 'vcodec[cluster]'") from None
    if ray.is_initialized():
        return ray, False
    try:
        if address == LOCAL_CLUSTER:
            ray.init(
                address="local",
                object_store_memory=RAY_OBJECT_STORE_BYTES,
                include_dashboard=False,
                log_to_driver=False,
            )
        else:
            ray.init(address=address, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise InputError(f"cannot join the Ray cluster at {address!r}: {exc}") from None
    return ray, True


def ray_result(ray: Any, ref: Any) -> Any:
    """A task's result; its vcodec error as it is, any other failure one WorkerError."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, VcxError):
            raise cause from None
        raise WorkerError(f"a task failed on the cluster: {cause or exc}") from None
    except ray.exceptions.RayError as exc:
        raise WorkerError(f"a task was lost on the cluster: {type(exc).__name__}") from None

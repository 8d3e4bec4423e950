"""Windows as jobs: what a worker needs to code one window's segments (its frames, or where to
read them: found by demuxing the input, or by a first pass where demuxing cannot say), the
result it sends back, and the order-keeping join of results with the windows resume kept."""

from __future__ import annotations

import hashlib
import itertools
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from vcodec.errors import InputNotVisibleError
from vcodec.frames import GOP_SIZE, Gop, VideoInfo
from vcodec.notes import ReadLog
from vcodec.pipeline.config import EncodeConfig
from vcodec.pipeline.segments import longest_segment, regroup, window_gops

if TYPE_CHECKING:
    from vcodec.io import Excerpt, VideoReader


_FRAMES_HANDLED_HERE = False  # this process coded or decoded frames (OpenCV's pool may run)


def frames_handled_here() -> None:
    """Note that this process codes or decodes frames itself: its workers are not forked
    from then on (a forked child of a process whose OpenCV or torch pool ran can hang)."""
    global _FRAMES_HANDLED_HERE
    _FRAMES_HANDLED_HERE = True


def may_fork() -> bool:
    """Whether worker processes may be forked from this one: it has handled no frames and
    not loaded torch (a forked CUDA runtime is not safe either)."""
    return not _FRAMES_HANDLED_HERE and "torch" not in sys.modules


@dataclass(frozen=True)
class WindowSource:
    """Where a worker reads a window itself: the input's path, the window's first frame and
    frame count, and the presentation timestamps of its first frame and of the next window's
    (an index's; None: counted from the input's start instead). The worker reads the input at
    ``path`` where it sees it there (a shared file system: the same size), else it raises
    InputNotVisibleError and the driver sends the window's packets (``excerpt``)."""

    path: str
    first_frame: int
    frames: int
    start_pts: int | None = None
    end_pts: int | None = None
    size: int = 0  # the input's bytes as the driver saw them (0: not checked)
    excerpt: Excerpt | None = None  # the window's packets, shipped where the path is not seen


@dataclass
class WindowJob:
    """One window to code into its segments: its GOPs (``start`` from the window's first
    frame) or its ``source``, the stream's size and rate, the config, and when known
    beforehand its ``digest`` (what resume checks): its packets' hash (an index), or its
    frames' sha256 (a first pass: what a worker's own reading must give)."""

    index: int
    info: VideoInfo
    config: EncodeConfig
    gops: Iterable[Gop] | None = None
    source: WindowSource | None = None
    digest: str = ""
    frames: int = 0
    target: str = ""  # what the user asked of it (targets.Target.label), else its qp
    read_digest: str = field(default="", compare=False)  # what reading it gave
    read_log: ReadLog | None = field(default=None, compare=False)  # what reading it found
    first_pts: int | None = field(default=None, compare=False)  # its first frame's, as read

    def read(self, seek: bool = True) -> Iterator[Gop]:
        """Its GOPs, read once; ``frames`` and (but for an indexed window) ``read_digest``, the
        frames' sha256, are set once they are all read.
        ``seek``: a source is read from the keyframe before the window (else from the
        input's start: slow, but exact where seeking is not)."""
        digest, frames = hashlib.sha256(), 0
        indexed = self.source is not None and self.source.start_pts is not None
        for gop in self.gops if self.gops is not None else self._from_source(seek):
            if not indexed:  # an indexed window's digest is its packets'
                for plane in gop.planes():
                    digest.update(np.ascontiguousarray(plane).data)
            frames += gop.n_frames
            yield gop
        self.read_digest, self.frames = "" if indexed else digest.hexdigest(), frames

    def _from_source(self, seek: bool) -> Iterator[Gop]:
        from vcodec.io import VideoReader, stretch

        source = self.source
        if source.excerpt is not None:
            log = ReadLog()
            frames = stretch(source.excerpt.frames(), source.start_pts, source.end_pts, log)
            yield from self._first_noted(frames, log)
            return
        if source.size and not _visible(source):
            raise InputNotVisibleError(f"{source.path} is not on this worker")
        with VideoReader(Path(source.path), describe=False) as reader:
            frames = reader.frames_between(
                source.first_frame, source.start_pts, source.end_pts, seek=seek
            )
            yield from self._first_noted(frames, reader.log)

    def _first_noted(self, frames: Iterator[Gop], log: ReadLog) -> Iterator[Gop]:
        """The window's frames in GOPs; its first frame's timestamp and the log kept."""
        self.first_pts, self.read_log = None, log
        for n, gop in enumerate(regroup(itertools.islice(frames, self.source.frames))):
            if n == 0:
                self.first_pts = log.pts[0] if log.pts else None
            yield gop


def _visible(source: WindowSource) -> bool:
    """Whether this machine sees the input at ``source.path`` (a file of the driver's size)."""
    try:
        return os.path.getsize(source.path) == source.size
    except OSError:
        return False


@dataclass
class WindowResult:
    """A coded window: a .vcx of its own holding its segments, its stages' costs, its digest
    (the job's, else the sha256 of the frames it was coded from), its frames, and what
    reading them found (a worker's own reading: the driver's notes)."""

    data: bytes
    costs: dict[str, dict[str, Any]]
    digest: str = ""
    frames: int = 0
    log: ReadLog | None = None


WindowRunner = Callable[[Iterator[WindowJob]], Iterator[WindowResult]]


def inline_jobs(
    gops: Iterable[tuple[int, Gop]], info: VideoInfo, config: EncodeConfig, materialise: bool
) -> Iterator[WindowJob]:
    """Jobs over window-tagged GOPs read here (segments.window_gops). Each job's GOPs stream
    from the input (code a job before asking for the next) unless ``materialise``: then they
    are held, and its digest known before coding (what resume needs)."""
    for index, group in itertools.groupby(gops, key=lambda g: g[0]):
        members: Iterable[Gop] = regroup(gop for _, gop in group)
        job = WindowJob(index, info, config, gops=members)
        if materialise:
            job.gops = list(members)
            for _ in job.read():
                pass
            job.digest = job.read_digest
        yield job


def zip_results(
    jobs: Iterator[WindowJob], run: WindowRunner, store: Any
) -> Iterator[tuple[WindowJob, WindowResult]]:
    """Each job with its result, in order: a window the store kept is taken from it, the
    others go to ``run`` (which keeps their order) and into the store."""
    done: deque[tuple[WindowJob, WindowResult | None]] = deque()

    def todo() -> Iterator[WindowJob]:
        for job in jobs:
            kept = store.kept(job) if store is not None and job.digest else None
            result = None if kept is None else WindowResult(kept[0], {}, job.digest, log=kept[1])
            done.append((job, result))
            if kept is None:
                yield job

    results = run(todo())
    ready: deque[WindowResult] = deque()  # the runner's results, in the order of its jobs
    exhausted = False
    while done or not exhausted:
        job, kept = done[0] if done else (None, None)
        if job is not None and kept is not None:
            done.popleft()
            yield job, kept
        elif job is not None and ready:
            done.popleft()
            result = ready.popleft()
            job.digest, job.frames = result.digest, result.frames or job.frames
            if store is not None:
                store.keep(job, result.data, result.log)
            yield job, result
        elif exhausted:
            raise RuntimeError(f"window {job.index} came back from no worker")
        else:
            try:
                ready.append(next(results))
            except StopIteration:
                exhausted = True


def plan_windows(
    reader: VideoReader, path: str | Path, config: EncodeConfig
) -> list[WindowJob] | None:
    """The windows of the input as demuxing finds them (VideoReader.index: no frame decoded),
    each with its timestamps and its packets' hash; workers cut them into segments as they
    code them. None where the input has no such index (plan_sources then)."""
    index = reader.index(config.frames)
    if index is None:
        return None
    length = longest_segment(reader.info.fps, config.segment_seconds)
    firsts = list(range(0, len(index.pts), length))
    starts = [index.pts[f] for f in firsts]
    ends: list[int | None] = [*starts[1:], None]  # the last: its length (islice) ends it
    jobs = []
    for n, (first, start, end, digest) in enumerate(
        zip(firsts, starts, ends, index.digests(starts), strict=True)
    ):
        frames = min(length, len(index.pts) - first)
        source = WindowSource(str(path), first, frames, start, end, os.path.getsize(path))
        jobs.append(WindowJob(n, reader.info, config, source=source, digest=digest, frames=frames))
    return jobs


def plan_sources(
    reader: VideoReader, path: str | Path, config: EncodeConfig
) -> Iterator[WindowJob]:
    """The first pass where demuxing cannot index the input (a raw stream, a folder of images):
    each window, as soon as it is read, with its first frame, length and frames' sha256,
    nothing coded; workers start on it meanwhile, reading it from the input's start."""
    first = 0
    gops = reader.gops(GOP_SIZE, config.frames)
    length = longest_segment(reader.info.fps, config.segment_seconds)
    for job in inline_jobs(window_gops(gops, length), reader.info, config, materialise=False):
        for _ in job.read():
            pass
        source = WindowSource(str(path), first, job.frames)
        yield replace(job, gops=None, digest=job.read_digest, source=source)
        first += job.frames


def set_threads(threads: int) -> None:
    """The stages' own threads (torch, OpenCV) follow --threads: a float sum's order, and so
    a decision taken on it, then depends on --threads alone, not on the machine's cores.
    Torch is told now if loaded, else by OMP_NUM_THREADS when a stage loads it."""
    if not threads:
        return
    cv2.setNumThreads(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    else:
        os.environ["OMP_NUM_THREADS"] = str(threads)

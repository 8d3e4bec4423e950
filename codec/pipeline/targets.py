"""Rate and quality targets: a whole file's size (--target-size, --bitrate) shared out among
its windows from probe encodes, or each window at the highest qp that reaches a PSNR
(--target-psnr) or an MS-SSIM (--target-msssim), as av1an's target-quality search does with
its probes."""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np

from vcodec.errors import InputError
from vcodec.frames import PSNR_YUV_WEIGHTS, Gop
from vcodec.pipeline.jobs import WindowJob, WindowResult, WindowRunner, regroup

PROBE_STEP = 6  # the second probe's qp above the first (--qp): about half the bytes
QP_RANGE = (1, 51)  # the qps a target may choose
SIZE_TOLERANCE = 0.02  # a size within this share of its target is not corrected further
MAX_CORRECTIONS = 8  # re-encodes of single windows to bring the total onto the target
QUALITY_ROUNDS = 5  # rounds of the --target-psnr and --target-msssim search after the two probes
UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "ki": 2**10, "mi": 2**20, "gi": 2**30}


@dataclass(frozen=True)
class Target:
    """What the user asked: the video's bytes (``size``), or per window a PSNR-YUV (dB) or a
    luma MS-SSIM."""

    size: int | None = None
    psnr: float | None = None
    msssim: float | None = None

    def label(self) -> str:
        if self.size:
            return f"size {self.size}"
        return f"psnr {self.psnr}" if self.psnr is not None else f"msssim {self.msssim}"

    def quality(self) -> tuple[float, Callable[[list[Gop], bytes], float]]:
        """The quality target in decibels, and what measures a coded window in them: PSNR-YUV,
        or MS-SSIM as -10 log10(1 - MS-SSIM) (so that one search, in dB, serves both)."""
        if self.psnr is not None:
            return self.psnr, psnr_yuv
        return msssim_db(self.msssim), lambda source, data: msssim_db(msssim(source, data))


def parse_amount(text: str, unit: str) -> float:
    """``25MB``, ``1.5GiB``, ``800k``, ``2M`` as a number of ``unit`` (B or b)."""
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgKMG]i?)?" + unit + r"?\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise InputError(f"{text!r} is not an amount like 25MB or 800k")
    return float(match.group(1)) * UNITS[(match.group(2) or "").lower()]


def size_target(target_size: str | None, bitrate: str | None, seconds: float) -> int | None:
    """The video's bytes asked for by --target-size (bytes) or --bitrate (bits a second)."""
    if target_size and bitrate:
        raise InputError("--target-size and --bitrate ask for the same thing: give one")
    if target_size:
        return int(parse_amount(target_size, "B"))
    if bitrate:
        return int(parse_amount(bitrate, "b") * seconds / 8)
    return None


def psnr_yuv(source: list[Gop], data: bytes) -> float:
    """The PSNR-YUV of a coded window (a .vcx of its own) against its frames, over all of
    its frames' pixels."""
    decoded = _decoded(data)
    errors = np.zeros(3)
    for ref, test in zip(regroup(source), decoded, strict=True):
        for i, (a, b) in enumerate(zip(ref.planes(), test.planes(), strict=True)):
            errors[i] += np.mean((a.astype(np.float64) - b) ** 2) * ref.n_frames
    frames = sum(g.n_frames for g in source)
    mse = float(np.dot(PSNR_YUV_WEIGHTS, errors / frames) / sum(PSNR_YUV_WEIGHTS))
    return 10 * math.log10(255**2 / max(mse, 1e-10))


def msssim(source: list[Gop], data: bytes) -> float:
    """The mean luma MS-SSIM of a coded window (a .vcx of its own) against its frames."""
    from vcodec.metrics import msssim_y

    ref = np.concatenate([g.y for g in source])
    test = np.concatenate([g.y for g in _decoded(data)])
    return float(np.mean(msssim_y(ref, test)))


def msssim_db(value: float) -> float:
    return -10 * math.log10(max(1e-10, 1 - value))


def _decoded(data: bytes) -> list[Gop]:
    from vcodec.pipeline.decoder import VcxDecoder

    return list(regroup(VcxDecoder(io.BytesIO(data), "cpu").gops()))


def at_qps(jobs: list[WindowJob], qps: list[int], run: WindowRunner) -> list[WindowResult]:
    """Each job coded at its qp (the runner keeps their order)."""
    coded = [
        replace(j, config=replace(j.config, qp=q), gops=None)
        for j, q in zip(jobs, qps, strict=True)
    ]
    return list(run(iter(coded)))


def _missing(
    jobs: list[WindowJob], chosen: list[int], tried: dict, run: WindowRunner
) -> list[tuple[int, WindowResult]]:
    """The chosen (window, qp) pairs not coded yet, coded now: (window, result)."""
    todo = [i for i in range(len(jobs)) if (i, chosen[i]) not in tried]
    results = at_qps([jobs[i] for i in todo], [chosen[i] for i in todo], run)
    return list(zip(todo, results, strict=True))


def meet_size(jobs: list[WindowJob], size: int, run: WindowRunner) -> list[WindowResult]:
    """Every window at a qp such that the total is as close to ``size`` bytes as whole qps
    allow: two probes each (--qp and PROBE_STEP above), a log-linear model of bytes against
    qp per window, one qp q* for all (equal slopes: bits go where they buy most), rounded
    per window to the nearest total, then single windows moved a qp at a time while that
    brings the total closer."""
    low = [j.config.qp for j in jobs]
    high = [min(QP_RANGE[1], q + PROBE_STEP) for q in low]
    tried: dict[tuple[int, int], WindowResult] = {}
    for qps in (low, high):
        for i, result in enumerate(at_qps(jobs, qps, run)):
            tried[i, qps[i]] = result
    slopes = [
        (math.log(len(tried[i, h].data)) - math.log(len(tried[i, lo].data))) / max(1, h - lo)
        for i, (lo, h) in enumerate(zip(low, high, strict=True))
    ]

    def predicted(i: int, q: float) -> float:
        return len(tried[i, low[i]].data) * math.exp(slopes[i] * (q - low[i]))

    lo_q, hi_q = float(QP_RANGE[0]), float(QP_RANGE[1])
    for _ in range(50):  # bisection on the common qp: sizes fall as it rises
        mid = (lo_q + hi_q) / 2
        over = sum(predicted(i, mid) for i in range(len(jobs))) > size
        lo_q, hi_q = (mid, hi_q) if over else (lo_q, mid)
    chosen = [min(QP_RANGE[1], max(QP_RANGE[0], round(lo_q))) for _ in jobs]
    for i, result in _missing(jobs, chosen, tried, run):
        tried[i, chosen[i]] = result
    for _ in range(MAX_CORRECTIONS):
        total = sum(len(tried[i, q].data) for i, q in enumerate(chosen))
        if abs(total - size) <= SIZE_TOLERANCE * size:
            break
        step = 1 if total > size else -1
        i = max(range(len(jobs)), key=lambda k: len(tried[k, chosen[k]].data))
        q = chosen[i] + step
        if not QP_RANGE[0] <= q <= QP_RANGE[1]:
            break
        if (i, q) not in tried:
            tried[i, q] = at_qps([jobs[i]], [q], run)[0]
        after = total - len(tried[i, chosen[i]].data) + len(tried[i, q].data)
        if abs(after - size) >= abs(total - size):
            break
        chosen[i] = q
    return [tried[i, q] for i, q in enumerate(chosen)]


def meet_quality(
    jobs: list[WindowJob],
    goal: float,
    measure: Callable[[list[Gop], bytes], float],
    run: WindowRunner,
) -> list[WindowResult]:
    """Each window at the highest qp whose quality (``measure``, in dB) reaches ``goal``: a
    search per window, all a round at a time (each round codes one qp of every unfinished one), from
    the probes (--qp, PROBE_STEP above) by straight lines between the qps that reach it and
    those that do not, until they are neighbours (QUALITY_ROUNDS at most)."""
    tried: dict[tuple[int, int], WindowResult] = {}
    quality: list[dict[int, float]] = [{} for _ in jobs]

    def code(indices: list[int], qps: list[int]) -> None:
        for i, q, result in zip(
            indices, qps, at_qps([jobs[i] for i in indices], qps, run), strict=True
        ):
            tried[i, q] = result
            quality[i][q] = measure(list(jobs[i].read()), result.data)  # one window in memory

    everyone = list(range(len(jobs)))
    code(everyone, [j.config.qp for j in jobs])
    code(everyone, [min(QP_RANGE[1], j.config.qp + PROBE_STEP) for j in jobs])
    for _ in range(QUALITY_ROUNDS):
        nexts = {i: q for i in everyone if (q := _next_qp(quality[i], goal)) is not None}
        if not nexts:
            break
        code(list(nexts), list(nexts.values()))
    return [tried[i, _best_qp(quality[i], goal)] for i in everyone]


def _best_qp(quality: dict[int, float], goal: float) -> int:
    """The highest qp tried that reaches ``goal``; none does: the lowest tried."""
    good = [q for q, db in quality.items() if db >= goal]
    return max(good) if good else min(quality)


def _next_qp(quality: dict[int, float], goal: float) -> int | None:
    """The qp to try next, or None when the answer is known (neighbours, or a range end)."""
    good = [q for q, db in quality.items() if db >= goal]
    above = [q for q, db in quality.items() if db < goal and good and q > max(good)]
    points = sorted(quality.items())
    (q0, d0), (q1, d1) = points[0], points[-1]
    slope = (d1 - d0) / (q1 - q0) if q1 != q0 and d1 != d0 else -0.5
    guess = round(q0 + (goal - d0) / slope)
    if good and above:  # between the best qp that reaches it and the next that does not
        low, high = max(good), min(above)
        return None if high - low <= 1 else min(high - 1, max(low + 1, guess))
    if not good:  # every qp tried misses: lower, down to the range's end
        q = max(QP_RANGE[0], min(min(quality) - 1, guess))
    else:  # every qp tried reaches it: higher, up to the range's end
        q = min(QP_RANGE[1], max(max(quality) + 1, guess))
    return None if q in quality else q


def meet_target(
    jobs: list[WindowJob],
    run: WindowRunner,
    target_size: str | None,
    bitrate: str | None,
    target_psnr: float | None,
    target_msssim: float | None,
    audio_bytes: int,
) -> tuple[WindowRunner, list[WindowJob]]:
    """Code ``jobs`` to the target asked (targets.py); returns a runner that hands back
    those results, in order, and the jobs labelled with the target."""
    seconds = sum(j.frames for j in jobs) / jobs[0].info.fps if jobs else 0
    size = size_target(target_size, bitrate, float(seconds))
    if size and target_size:  # the whole file: the audio's bytes come first
        size -= audio_bytes
    if size is not None and size <= 0:
        raise InputError(f"--target-size {target_size} leaves no bytes for the video")
    if sum(x is not None for x in (size, target_psnr, target_msssim)) > 1:
        raise InputError("give one target: a size or bitrate, --target-psnr or --target-msssim")
    if target_msssim is not None and not 0 < target_msssim < 1:
        raise InputError(f"--target-msssim is between 0 and 1 (0.95, 0.99), not {target_msssim}")
    target = Target(size=size, psnr=target_psnr, msssim=target_msssim)
    jobs = [replace(j, target=target.label()) for j in jobs]
    if size:
        results = meet_size(jobs, size, run)
    else:
        results = meet_quality(jobs, *target.quality(), run)

    def given(asked: Iterator[WindowJob]) -> Iterator[WindowResult]:
        for _job, result in zip(asked, results, strict=True):
            yield result

    return given, jobs

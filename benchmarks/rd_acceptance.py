"""Issue 4's RD acceptance, read from `vcodec bench` runs' bench.json (or bench.csv) files: the
BD-rate on PSNR-YUV of a vcx codec against x265 per clip and averaged, over a set of --qp
points, and over the points below 0.03 bpp alone (both curves cut there; a clip with fewer than
4 such points on either curve has no value there and stays out of that mean).

One bench run over the union of the QP sets gives every figure:

    vcodec bench intel_car-detection_768x432.mp4 bikes.mp4 carphone_pristine.mp4 \\
        dance_signlang_qcif_62f_h264.264 --frames 48 --codecs vcx,vcx-noparams,x265 \\
        --qp 22,27,32,36,37,40,42,44,48 --out bench_rd
    python benchmarks/rd_acceptance.py bench_rd/bench.csv --sets 22,27,32,37,42 32,36,40,44,48
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vcodec.report import BenchPoint, bd_rate, by_clip_codec, read_csv

LOW_RATE_BPP = 0.03  # the low-rate bound
ANCHOR = "x265"


def bd_rates(
    curves: dict[str, dict[str, list[BenchPoint]]],
    codec: str,
    keep: Callable[[BenchPoint], bool],
) -> dict[str, float | None]:
    """BD-rate (%) of ``codec`` against ANCHOR on each clip, over the points ``keep`` accepts."""
    out = {}
    for clip, by_codec in curves.items():
        if codec not in by_codec or ANCHOR not in by_codec:
            continue
        anchor = [p for p in by_codec[ANCHOR] if keep(p)]
        test = [p for p in by_codec[codec] if keep(p)]
        out[clip] = bd_rate(anchor, test, "psnr_yuv")
    return out


def points_of(qps: set[int], below_bpp: float = np.inf) -> Callable[[BenchPoint], bool]:
    """Accepts the points at one of ``qps`` below ``below_bpp``."""
    return lambda p: p.q in qps and p.bpp < below_bpp


def line(name: str, values: dict[str, float | None]) -> str:
    cells = " ".join("    n/a" if v is None else f"{v:+7.2f}" for v in values.values())
    known = [v for v in values.values() if v is not None]
    mean = f"{np.mean(known):+7.2f}" if known else "    n/a"
    return f"{name:34} {cells}  {mean} ({len(known)} clips)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="+", help="bench.csv files (points)")
    parser.add_argument("--codecs", default="vcx", help="comma-separated vcx codecs")
    parser.add_argument(
        "--sets", nargs="*", default=["22,27,32,37,42", "32,36,40,44,48"],
        help="QP sets, each comma-separated",
    )  # fmt: skip
    args = parser.parse_args()
    points = [p for path in args.results for p in read_csv(path)]
    curves = by_clip_codec(points)
    clips = list(curves)
    print(f"BD-rate PSNR-YUV vs {ANCHOR} (%); clips: {', '.join(c[:16] for c in clips)}; mean")
    for codec in args.codecs.split(","):
        for qp_set in args.sets:
            qps = {int(q) for q in qp_set.split(",")}
            print(line(f"{codec} q {qp_set}", bd_rates(curves, codec, points_of(qps))))
            low = points_of(qps, LOW_RATE_BPP)
            print(line(f"  below {LOW_RATE_BPP} bpp", bd_rates(curves, codec, low)))


if __name__ == "__main__":
    main()

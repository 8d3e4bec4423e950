"""Issue 4's RD acceptance, read from `vcodec bench` runs' bench.csv files: the BD-rate on
PSNR-YUV (or --metric) of vcx codecs against x265 (or another codec of the runs: an ablation)
per clip and averaged, over sets of --qp points, and over the points below 0.03 bpp alone
(both curves cut there; a clip with fewer than 4 such points on either curve has no value
there and stays out of that mean).

One bench run over the union of the QP sets gives every figure (runs may also be split by clip
or codec, and their CSVs given together):

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

from vcodec.eval.report import BenchPoint, bd_rate, by_clip_codec, read_csv

LOW_RATE_BPP = 0.03  # the low-rate bound


def bd_rates(
    curves: dict[str, dict[str, list[BenchPoint]]],
    codec: str,
    anchor: str,
    keep: Callable[[BenchPoint], bool],
    metric: str = "psnr_yuv",
) -> dict[str, float | None]:
    """BD-rate (%) of ``codec`` against ``anchor`` on each clip, over the points ``keep``
    accepts; None where either has no curve."""
    out = {}
    for clip, by_codec in curves.items():
        if codec not in by_codec or anchor not in by_codec:
            out[clip] = None
            continue
        reference = [p for p in by_codec[anchor] if keep(p)]
        test = [p for p in by_codec[codec] if keep(p)]
        out[clip] = bd_rate(reference, test, metric)
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
    parser.add_argument("--anchor", default="x265", help="the codec they are measured against")
    parser.add_argument("--metric", default="psnr_yuv", help="psnr_yuv, psnr_y or msssim_y")
    parser.add_argument(
        "--sets", nargs="*", default=["22,27,32,37,42", "32,36,40,44,48"],
        help="QP sets, each comma-separated",
    )  # fmt: skip
    args = parser.parse_args()
    points = [p for path in args.results for p in read_csv(path)]
    curves = by_clip_codec(points)
    clips = list(curves)
    names = ", ".join(c[:16] for c in clips)
    print(f"BD-rate {args.metric} vs {args.anchor} (%); clips: {names}; mean")
    for codec in args.codecs.split(","):
        for qp_set in args.sets:
            qps = {int(q) for q in qp_set.split(",")}
            values = bd_rates(curves, codec, args.anchor, points_of(qps), args.metric)
            print(line(f"{codec} q {qp_set}", values))
            low = bd_rates(curves, codec, args.anchor, points_of(qps, LOW_RATE_BPP), args.metric)
            print(line(f"  below {LOW_RATE_BPP} bpp", low))


if __name__ == "__main__":
    main()

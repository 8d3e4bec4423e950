"""The temporal stage's guess of the base layer's error before it has decoded a GOP
(temporal.expected_base_error), fitted on the training clips and checked on the held-out ones.

The encoder decides whether a GOP drops frames about three GOPs before it has decoded its first
one (x265's look-ahead), so the first GOPs of every stream, and every GOP of a short one, are
judged against a guess. For every GOP of the first --frames of each clip, coded by vcodec's
own base layer at each --qp and scale 1 and 2 (Wiener filters and temporal scaling off), the
base layer's PSNR-YUV-weighted MSE against the GOP's content features (the parameter module's,
scale.gop_features): a least-squares fit of log2(MSE) on [1, base QP / 51, scale - 1, detail
lost by scale 2, texture], lowered by the residuals' --quantile on the training clips so that
the guess stays under the truth there (a guess too high drops frames that cost more than
they save); the encoder takes the larger of it and quietest_base_error. Prints the coefficients
(temporal.BASE_ERROR_FIT) and how often the guess is above the truth, and by how much, on each set.

    python benchmarks/base_error_fit.py --data TRAINING_CLIPS [--frames 64]
        [--qps 22,27,32,37,42,47] [--quantile 0.1]
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from recon_vs_interp import HELD_OUT
from shared_clips import SHARED_CLIPS

from vcodec.eval.bench import load_clip
from vcodec.frames import yuv_mse
from vcodec.pipeline.config import EncodeConfig
from vcodec.pipeline.decoder import VcxDecoder
from vcodec.pipeline.encoder import encode_gops
from vcodec.stages.scale import base_qp
from vcodec.stages.temporal import BASE_ERROR_FIT, base_error_inputs, quietest_base_error
from vcodec.train.data import find_clips


def rows(paths: list[Path], frames: int, qps: list[int]) -> tuple[np.ndarray, np.ndarray, list]:
    """(inputs [N, 5], log2 MSE [N], (clip, qp, scale) per row) of every GOP."""
    inputs, targets, keys = [], [], []
    for path in paths:
        clip = load_clip(path, frames)
        for qp in qps:
            for scale in (1, 2):
                buf = io.BytesIO()
                config = EncodeConfig(
                    qp=qp, base="x265", scale=str(scale), wiener=False, temporal=False
                )
                encode_gops(iter(clip.gops), clip.info, buf, config)
                buf.seek(0)
                decoded = VcxDecoder(buf, "cpu").gops()
                for gop, dec in zip(clip.gops, decoded, strict=True):
                    inputs.append(base_error_inputs(gop, base_qp(qp, scale), scale))
                    targets.append(np.log2(max(yuv_mse(gop, dec), 1e-3)))
                    keys.append((path.name, qp, scale))
        print(f"{path.name}: {len(targets)} GOP rows so far", flush=True)
    return np.stack(inputs), np.asarray(targets), keys


def report(name: str, inputs: np.ndarray, targets: np.ndarray, coefs: np.ndarray) -> None:
    err = inputs @ coefs - targets  # log2(guess / truth)
    over = err > 0
    print(f"{name}: {len(err)} GOPs, guess above the truth on {100 * over.mean():.1f} % "
          f"(median {2 ** np.median(err[over]) if over.any() else 1:.2f}x there), "
          f"median guess/truth {2 ** np.median(err):.2f}")  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--qps", default="22,27,32,37,42,47")
    ap.add_argument("--quantile", type=float, default=0.1)
    args = ap.parse_args()
    qps = [int(q) for q in args.qps.split(",")]
    x, y, _ = rows(find_clips(args.data), args.frames, qps)
    coefs, *_ = np.linalg.lstsq(x, y, rcond=None)
    coefs[0] += np.quantile(y - x @ coefs, args.quantile)
    print("BASE_ERROR_FIT = (" + ", ".join(f"{c:.3f}" for c in coefs) + ")")
    report("training", x, y, coefs)
    hx, hy, keys = rows([SHARED_CLIPS / c for c in HELD_OUT], 48, qps)
    report("held out", hx, hy, coefs)
    shipped = np.asarray(BASE_ERROR_FIT)
    if not np.allclose(shipped, coefs, atol=1e-3):
        report("held out, the shipped BASE_ERROR_FIT", hx, hy, shipped)
    quiet = np.log2([quietest_base_error(base_qp(q, s)) for _, q, s in keys])
    guess = np.maximum(hx @ shipped, quiet)  # expected_base_error: the larger of the two
    for name, g in (("quietest_base_error alone", quiet), ("expected_base_error", guess)):
        print(f"held out, {name}: above the truth on {100 * (g > hy).mean():.1f} %, "
              f"median guess/truth {2 ** np.median(g - hy):.2f}")  # fmt: skip


if __name__ == "__main__":
    main()

"""Reconstruction network vs linear scattered-data interpolation from the same samples.

On held-out clips (never in `vcodec train`'s data), random 96x96 luma windows (on the 8-pixel
patch grid) of the first GOPs are sampled at density ~1/8 with two masks: the shipped
candidate closest to 1/8 on every patch, and an i.i.d. random mask of density 1/8. Samples are
unquantised. The networks see the samples, the mask and a mid-grey prediction (as for a pure
stream's first GOP); the classical baseline is linear interpolation within each frame (2-D
Delaunay, joggled so that the candidate's regular sample grid triangulates, nearest outside
the hull; a frame with fewer than 4 samples takes the nearest interpolated frame). PSNR-Y over
all windows of a clip. Windows, not whole frames, so that the Delaunay baseline runs in
seconds (whole 640x272 bikes GOPs took 690 s under the candidate mask).

    python benchmarks/recon_vs_interp.py [CLIP ...] [--gops 2] [--windows 6]
        [--models recon-v1,recon-v2] [--weights PATH]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from scipy.interpolate import LinearNDInterpolator, NearestNDInterpolator
from scipy.spatial import Delaunay
from shared_clips import SHARED_CLIPS

from vcodec.eval.bench import load_clip
from vcodec.models import registry
from vcodec.models.reconstruction import RESIDUAL_UNIT, ReconstructionNetV2
from vcodec.stages.masks import PATCH_H, PATCH_T, PATCH_W, candidate_masks, expand, recon_input
from vcodec.train.common import load_weights

HELD_OUT = [
    "bikes.mp4",
    "carphone_pristine.mp4",
    "intel_car-detection_768x432.mp4",
    "dance_signlang_qcif_62f_h264.264",
]
DENSITY = 1 / 8
WINDOW = 96  # luma pixels a side, a multiple of the patch


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-10)))


def linear_2d(y: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Linear interpolation of the samples of y [T, H, W] at mask, frame by frame."""
    out = np.zeros(y.shape, np.float64)
    grid = np.argwhere(np.ones(y.shape[1:], bool))
    done = [t for t in range(len(y)) if mask[t].sum() >= 4]
    for t in done:
        pts = np.argwhere(mask[t])
        vals = y[t][mask[t]].astype(np.float64)
        lin = LinearNDInterpolator(Delaunay(pts, qhull_options="QJ"), vals)(grid)
        near = NearestNDInterpolator(pts, vals)(grid)
        out[t] = np.where(np.isnan(lin), near, lin).reshape(y.shape[1:])
    for t in range(len(y)):  # a frame without samples takes the nearest interpolated frame
        if t not in done:
            out[t] = out[min(done, key=lambda d: abs(d - t))]
    return out


def network(y: np.ndarray, mask: np.ndarray, net: torch.nn.Module) -> np.ndarray:
    """The network's reconstruction of windows y [N, T, H, W] from their samples at mask."""
    x = torch.from_numpy(y).float()
    p = torch.full_like(x, 128.0)
    m = torch.from_numpy(mask).float()
    with torch.no_grad():
        out = p + net(recon_input(x - p, m, p, True, False, 1.0)) * RESIDUAL_UNIT
    return out.clamp(0, 255).round().numpy()


def masks_for(shape: tuple[int, ...], kind: str, rng) -> np.ndarray:
    n, t, h, w = shape
    if kind == "random":
        return rng.random(shape) < DENSITY
    cands = candidate_masks()
    k = int(torch.argmin((cands.flatten(1).mean(1) - DENSITY).abs()))
    index = torch.full((n, h // PATCH_H, w // PATCH_W), k, dtype=torch.long)
    return expand(cands, index, t).numpy() > 0


def windows(path: Path, gops: int, per_gop: int, rng) -> np.ndarray:
    """[N, 16, WINDOW, WINDOW] luma windows of the clip's first ``gops`` GOPs."""
    out = []
    for gop in load_clip(path, PATCH_T * gops).gops:
        if gop.n_frames < PATCH_T:
            continue
        for _ in range(per_gop):
            top = int(rng.integers(0, gop.height - WINDOW + 1)) // PATCH_H * PATCH_H
            left = int(rng.integers(0, gop.width - WINDOW + 1)) // PATCH_W * PATCH_W
            out.append(gop.y[:, top : top + WINDOW, left : left + WINDOW])
    return np.stack(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("clips", nargs="*", type=Path)
    ap.add_argument("--gops", type=int, default=2)
    ap.add_argument("--windows", type=int, default=6, help="windows per GOP")
    ap.add_argument("--models", default="recon-v1,recon-v2", help="shipped networks to run")
    ap.add_argument("--weights", type=Path, help="also a recon-v2 weights file (training runs)")
    args = ap.parse_args()
    nets = {name: registry.load(name) for name in args.models.split(",") if name}
    if args.weights:
        nets[args.weights.name] = load_weights(args.weights, ReconstructionNetV2)
    rng = np.random.default_rng(0)
    names = list(nets)
    columns = "  ".join(f"{n[:10]:>10s}" for n in names)
    print(f"{'clip':27s} {'mask':9s} density  2-D lin  {columns}   gain over 2-D (s: 2-D / nets)")
    gains: dict[tuple[str, str], list[float]] = {}
    for path in args.clips or [SHARED_CLIPS / c for c in HELD_OUT]:
        y = windows(path, args.gops, args.windows, rng)
        for kind in ("candidate", "random"):
            mask = masks_for(y.shape, kind, rng)
            t0 = time.perf_counter()
            lin = psnr(y, np.stack([linear_2d(a, m) for a, m in zip(y, mask, strict=True)]))
            t1 = time.perf_counter()
            scores = {name: psnr(y, network(y, mask, net)) for name, net in nets.items()}
            t2 = time.perf_counter()
            for name, score in scores.items():
                gains.setdefault((name, kind), []).append(score - lin)
            print(
                f"{Path(path).name[:27]:27s} {kind:9s} {mask.mean():7.4f}  {lin:7.2f}  "
                + "  ".join(f"{scores[n]:10.2f}" for n in names)
                + "   " + " ".join(f"{scores[n] - lin:+6.2f}" for n in names)
                + f"   ({t1 - t0:.1f} / {t2 - t1:.1f})",
                flush=True,
            )  # fmt: skip
    for (name, kind), g in gains.items():
        print(f"mean gain of {name}, {kind} mask: {np.mean(g):+.2f} dB over 2-D linear")


if __name__ == "__main__":
    main()

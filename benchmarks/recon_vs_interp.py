"""Reconstruction network vs linear scattered-data interpolation from the same samples.

On held-out clips (never in `vcodec train`'s data), every [16, 8, 8] luma patch of the first
GOPs is sampled with one mask at density ~1/8 (the shipped candidate closest to 1/8, and an
i.i.d. random mask of density 1/8), samples unquantised. The network sees the samples, the
mask and a mid-grey prediction (as for a pure stream's first GOP); the classical baselines are
scipy's linear interpolation per frame (2-D Delaunay, nearest outside the hull) and across
space-time (3-D Delaunay over t, y, x). PSNR-Y over the whole GOP.

    python benchmarks/recon_vs_interp.py [CLIP ...] [--gops 1] [--3d]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from scipy.interpolate import LinearNDInterpolator, NearestNDInterpolator
from shared_clips import SHARED_CLIPS

from vcodec.eval.bench import load_clip
from vcodec.models import registry
from vcodec.models.reconstruction import RESIDUAL_UNIT
from vcodec.stages.masks import PATCH_H, PATCH_W, candidate_masks, expand, recon_input, tiled

HELD_OUT = [
    "bikes.mp4",
    "carphone_pristine.mp4",
    "intel_car-detection_768x432.mp4",
    "dance_signlang_qcif_62f_h264.264",
]
DENSITY = 1 / 8


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-10)))


def interpolate(y: np.ndarray, mask: np.ndarray, dims: int) -> np.ndarray:
    """Linear interpolation of the samples of y [T, H, W] at mask, per frame (2) or in 3-D."""
    out = np.zeros(y.shape, np.float64)
    if dims == 3:
        pts = np.argwhere(mask)
        vals = y[mask].astype(np.float64)
        grid = np.argwhere(np.ones_like(mask))
        lin = LinearNDInterpolator(pts, vals)(grid)
        near = NearestNDInterpolator(pts, vals)(grid)
        return np.where(np.isnan(lin), near, lin).reshape(y.shape)
    grid = np.argwhere(np.ones(y.shape[1:], bool))
    done = [t for t in range(len(y)) if mask[t].sum() >= 4]
    for t in done:
        pts = np.argwhere(mask[t])
        vals = y[t][mask[t]].astype(np.float64)
        lin = LinearNDInterpolator(pts, vals)(grid)
        near = NearestNDInterpolator(pts, vals)(grid)
        out[t] = np.where(np.isnan(lin), near, lin).reshape(y.shape[1:])
    for t in range(len(y)):  # a frame without samples takes the nearest interpolated frame
        if t not in done:
            out[t] = out[min(done, key=lambda d: abs(d - t))]
    return out


def network(y: np.ndarray, mask: np.ndarray, net: torch.nn.Module) -> np.ndarray:
    t, h, w = y.shape
    x = torch.from_numpy(y).float()[None]
    p = torch.full_like(x, 128.0)
    m = torch.from_numpy(mask).float()[None]
    with torch.no_grad():
        inp = recon_input(x - p, m, p, True, False, 1.0)
        out = p + tiled(net, lambda rows, cols: inp[..., rows, cols], h, w, 1) * RESIDUAL_UNIT
    return out.clamp(0, 255).round()[0].numpy()


def masks_for(shape: tuple[int, int, int], kind: str, rng) -> np.ndarray:
    t, h, w = shape
    if kind == "random":
        return rng.random(shape) < DENSITY
    cands = candidate_masks()
    k = int(torch.argmin((cands.flatten(1).mean(1) - DENSITY).abs()))
    index = torch.full((1, h // PATCH_H, w // PATCH_W), k, dtype=torch.long)
    return expand(cands, index, t)[0].numpy() > 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("clips", nargs="*", type=Path)
    ap.add_argument("--gops", type=int, default=1)
    ap.add_argument("--3d", dest="three_d", action="store_true", help="also 3-D Delaunay (slow)")
    args = ap.parse_args()
    net = registry.load("recon-v1")
    rng = np.random.default_rng(0)
    print("clip                        mask       density  net PSNR  2-D lin  3-D lin  "
          "net-2D  net-3D  (s: net / 2-D / 3-D)")  # fmt: skip
    gains = []
    for path in args.clips or [SHARED_CLIPS / c for c in HELD_OUT]:
        clip = load_clip(path, 16 * args.gops)
        for kind in ("candidate", "random"):
            rows = []
            for gop in clip.gops:
                y = gop.y[:, : gop.height // 8 * 8, : gop.width // 8 * 8]
                mask = masks_for(y.shape, kind, rng)
                t0 = time.perf_counter()
                net_out = network(y, mask, net)
                t1 = time.perf_counter()
                lin2 = interpolate(y, mask, 2)
                t2 = time.perf_counter()
                lin3 = interpolate(y, mask, 3) if args.three_d else np.full(y.shape, np.nan)
                t3 = time.perf_counter()
                rows.append((psnr(y, net_out), psnr(y, lin2), psnr(y, lin3), t1 - t0, t2 - t1,
                             t3 - t2, mask.mean()))  # fmt: skip
            n, l2, l3, tn, t2s, t3s, d = np.mean(rows, axis=0)
            gains.append((kind, n - l2, n - l3))
            print(
                f"{Path(path).name[:27]:27s} {kind:10s} {d:7.4f}  {n:8.2f}  {l2:7.2f}  "
                f"{l3:7.2f}  {n - l2:+6.2f}  {n - l3:+6.2f}  ({tn:.1f} / {t2s:.1f} / {t3s:.1f})"
            )
    for kind in ("candidate", "random"):
        g = np.array([(a, b) for k, a, b in gains if k == kind])
        print(
            f"mean gain, {kind} mask: {g[:, 0].mean():+.2f} dB vs 2-D, "
            f"{g[:, 1].mean():+.2f} dB vs 3-D"
        )


if __name__ == "__main__":
    main()

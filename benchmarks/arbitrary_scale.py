"""Would scales between 1 and 2 (seed 004's arbitrary scale) pay beside s in {1, 2}? An upper
bound, measured before building them into the format (issue 18).

For each clip (its first --frames frames) and each s in {1, 4/3, 3/2, 2}: every plane shrunk
by s (bilinear with antialiasing, to even sizes), the base layer (x265 medium, SEI-free) at CRF
qp - OFFSET[s] for qp in QPS (OFFSET continues vcx's s = 2 offset of 5), decoded, enlarged back
by bicubic interpolation (vcx's decoder), PSNR-YUV against the source. Each set of scales is
scored by its oracle envelope: the lower convex hull of rate over PSNR of all its points (a
per-point choice of the best scale, with time sharing between points), and the table gives
the BD-rate (log-rate averaged over the common PSNR range) of {1, 2}'s envelope against s = 1
alone, and of {1, 4/3, 3/2, 2}'s against {1, 2}'s: what the intermediate scales could add if a
parameter module chose perfectly.

    python benchmarks/arbitrary_scale.py CLIP ... [--frames 32] [--out arbitrary_scale.json]
"""

from __future__ import annotations

import argparse
import json
import math
from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as F

from vcodec.frames import GOP_SIZE, Gop
from vcodec.io import open_video
from vcodec.stages.base_layer import BaseDecoder, BaseEncoder

SCALES = (Fraction(1), Fraction(4, 3), Fraction(3, 2), Fraction(2))
OFFSET = {Fraction(1): 0, Fraction(4, 3): 2, Fraction(3, 2): 3, Fraction(2): 5}
QPS = (22, 27, 32, 37, 42, 47)


def resize(plane: np.ndarray, height: int, width: int, down: bool) -> np.ndarray:
    x = torch.from_numpy(plane).double()[:, None]
    mode = {"mode": "bilinear", "antialias": True} if down else {"mode": "bicubic"}
    y = F.interpolate(x, size=(height, width), align_corners=False, **mode)
    return y[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()


def coded(planes: list[np.ndarray], fps, crf: int) -> tuple[int, list[np.ndarray]]:
    """The base layer's bytes for ``planes`` and its decoded planes."""
    _, height, width = planes[0].shape
    enc = BaseEncoder("x265", width, height, fps, crf)
    data = b"".join(enc.encode(Gop(*planes, 0)) + enc.flush())
    dec = BaseDecoder("x265", enc.extradata)
    frames = dec.decode(enc.extradata + data) + dec.flush()
    return len(data), [np.stack(p) for p in zip(*frames, strict=True)]


def psnr_yuv(ref: list[np.ndarray], test: list[np.ndarray]) -> float:
    mse = [float(np.mean((r.astype(np.float64) - t) ** 2)) for r, t in zip(ref, test, strict=True)]
    return 10 * math.log10(255**2 / ((6 * mse[0] + mse[1] + mse[2]) / 8))


def envelope(points: list[tuple[float, float]]) -> np.ndarray:
    """[(rate, psnr)] -> the lower convex hull of rate over PSNR, by PSNR."""
    hull: list[tuple[float, float]] = []
    for q, r in sorted((q, r) for r, q in points):
        while hull and hull[-1][1] >= r:  # dominated: less PSNR for as many bits
            hull.pop()
        while len(hull) >= 2 and (hull[-1][1] - hull[-2][1]) * (q - hull[-2][0]) >= (
            r - hull[-2][1]
        ) * (hull[-1][0] - hull[-2][0]):
            hull.pop()
        hull.append((q, r))
    return np.array(hull)


def bd(anchor: np.ndarray, test: np.ndarray) -> float:
    """BD-rate in % of ``test`` against ``anchor`` (envelopes of (psnr, rate) rows)."""
    lo, hi = max(anchor[0, 0], test[0, 0]), min(anchor[-1, 0], test[-1, 0])
    qs = np.linspace(lo, hi, 256)
    diff = np.interp(qs, test[:, 0], np.log(test[:, 1])) - np.interp(
        qs, anchor[:, 0], np.log(anchor[:, 1])
    )
    return 100 * (math.exp(float(diff.mean())) - 1)


def measure(path: str, frames: int) -> dict:
    with open_video(path) as reader:
        gops = list(reader.gops(GOP_SIZE, frames))
        fps = reader.info.fps
    height, width = (gops[0].height // 2) * 2, (gops[0].width // 2) * 2
    source = [
        np.concatenate([p[:, : height // k, : width // k] for p in plane])
        for plane, k in zip(zip(*(g.planes() for g in gops), strict=True), (1, 2, 2), strict=True)
    ]
    points = {}
    for s in SCALES:
        h, w = 2 * round(height / s / 2), 2 * round(width / s / 2)
        sizes = ((h, w), (h // 2, w // 2), (h // 2, w // 2))
        small = (
            source
            if s == 1
            else [resize(p, *hw, True) for p, hw in zip(source, sizes, strict=True)]
        )
        for qp in QPS:
            n, out = coded(small, fps, max(0, qp - OFFSET[s]))
            if s != 1:
                out = [resize(p, *r.shape[1:], False) for p, r in zip(out, source, strict=True)]
            points.setdefault(str(s), []).append((8 * n, psnr_yuv(source, out)))
    one, pair = envelope(points["1"]), envelope(points["1"] + points["2"])
    every = envelope([p for v in points.values() for p in v])
    return {
        "points": points,
        "bd_12_vs_1": bd(one, pair),
        "bd_all_vs_12": bd(pair, every),
        "bd_2_vs_1": bd(one, envelope(points["2"])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", nargs="+")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--out", default="arbitrary_scale.json")
    args = parser.parse_args()
    results = {}
    print("| clip | s = 2 vs 1 | {1, 2} vs 1 | {1, 4/3, 3/2, 2} vs {1, 2} |\n|---|---|---|---|")
    for path in args.clips:
        r = results[path] = measure(path, args.frames)
        name = path.rsplit("/", 1)[-1]
        print(f"| {name} | {r['bd_2_vs_1']:+.2f} % | {r['bd_12_vs_1']:+.2f} % "
              f"| {r['bd_all_vs_12']:+.2f} % |", flush=True)  # fmt: skip
    mean = np.mean([r["bd_all_vs_12"] for r in results.values()])
    print(f"mean gain of the intermediate scales over {{1, 2}}: {mean:+.2f} %")
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()

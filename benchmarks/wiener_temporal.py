"""What co-located temporal taps would add to the Wiener filter (an oracle, before building it).

For the held-out clips coded by vcodec's own base layer (Wiener filters and temporal scaling
off, --scale 1), per GOP and plane, the least-squares one-class filter over the shipped
spatial taps (a pixel's second differences in the diamond, and a constant), and over those
plus two temporal features of the co-located pixels in the previous and next decoded frame
(x[t-1] + x[t+1] - 2x, x[t+1] - x[t-1]; edge-replicated at GOP ends). Prints each fit's SSE
reduction in dB, PSNR-YUV-weighted, in float64 over every pixel, before quantisation and with
no side information: an upper bound of what the temporal taps add.

    python benchmarks/wiener_temporal.py [CLIP ...] [--frames 48] [--qps 22,32,42]
"""

from __future__ import annotations

import io

import numpy as np
import torch
from recon_vs_interp import HELD_OUT
from shared_clips import clip_parser, clip_paths

from vcodec.eval.bench import load_clip
from vcodec.frames import PSNR_YUV_WEIGHTS
from vcodec.pipeline.config import EncodeConfig
from vcodec.pipeline.decoder import VcxDecoder
from vcodec.pipeline.encoder import encode_gops
from vcodec.stages.wiener import _frame_tensor, _padded, _pair_sums
from vcodec.stages.wiener_payload import RADII

RIDGE = 1e-3  # x the number of features, on the normal equations' diagonal


def residual_sse(source: np.ndarray, decoded: np.ndarray, radius: int, temporal: bool) -> tuple:
    """(SSE of the decoded plane [T, H, W], SSE after the least-squares filter)."""
    frames, h, w = decoded.shape
    columns, residuals = [], []
    for t in range(frames):
        x = _frame_tensor(decoded[t])
        feats = [v - 2 * x for v in _pair_sums(_padded(x, radius), radius, h, w)]
        if temporal:
            before = _frame_tensor(decoded[max(t - 1, 0)])
            after = _frame_tensor(decoded[min(t + 1, frames - 1)])
            feats += [before + after - 2 * x, after - before]
        feats.append(torch.ones_like(x))
        columns.append(torch.stack([f.reshape(-1) for f in feats]).double())
        residuals.append((torch.from_numpy(source[t]).double() - 128 - x.double()).reshape(-1))
    a, r = torch.cat(columns, 1), torch.cat(residuals)
    normal = a @ a.T + RIDGE * len(a) * torch.eye(len(a), dtype=torch.float64)
    err = r - torch.linalg.solve(normal, a @ r) @ a
    return float(r @ r), float(err @ err)


def main() -> None:
    ap = clip_parser(__doc__, 48, "22,32,42")
    args = ap.parse_args()
    print("clip         qp  kbytes  spatial  +temporal  temporal adds (dB)")
    for path in clip_paths(args, HELD_OUT):
        clip = load_clip(path, args.frames)
        for qp in args.qps:
            buf = io.BytesIO()
            config = EncodeConfig(qp=qp, base="x265", scale="1", wiener=False, temporal=False)
            encode_gops(iter(clip.gops), clip.info, buf, config)
            size = len(buf.getvalue())
            buf.seek(0)
            total = np.zeros(3)  # base, spatial, spatial + temporal (weighted SSE)
            for src, dec in zip(clip.gops, VcxDecoder(buf, "cpu").gops(), strict=True):
                planes = zip(src.planes(), dec.planes(), PSNR_YUV_WEIGHTS, RADII, strict=True)
                for s, d, weight, radius in planes:
                    base, spatial = residual_sse(s, d, radius, False)
                    total += weight * np.array([base, spatial, residual_sse(s, d, radius, True)[1]])
            db = 10 * np.log10(total[0] / total[1:])
            print(f"{path.name[:12]:12} {qp:3} {size / 1000:7.1f} {db[0]:+8.3f} {db[1]:+10.3f} "
                  f"{db[1] - db[0]:+10.3f}")  # fmt: skip


if __name__ == "__main__":
    main()

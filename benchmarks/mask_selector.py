"""Speed of mask selection: the selection network vs the exhaustive RD search it imitates.

Times `MaskCodec.select` both ways on the luma and chroma groups of held-out GOPs (pure and
hybrid), and reports how often the two agree and the RD cost the network's choice adds. The
BD-rate gap comes from `vcodec bench --codecs vcx,vcx-exhaustive,...` (vcx-exhaustive is an
anchor there).

    python benchmarks/mask_selector.py [CLIP ...] [--qp 32] [--device cpu]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from recon_vs_interp import HELD_OUT
from shared_clips import SHARED_CLIPS

from vcodec.device import resolve_device
from vcodec.eval.bench import load_clip
from vcodec.stages.masks import MaskCodec, held_prediction, plane_groups
from vcodec.train.data import base_layer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("clips", nargs="*", type=Path)
    ap.add_argument("--qp", type=int, default=32)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    device = resolve_device(args.device)
    print("clip                        mode    net s  exh s  speed-up  agree  cost +%")
    for path in args.clips or [SHARED_CLIPS / c for c in HELD_OUT]:
        clip = load_clip(path, args.frames)
        for pure in (False, True):
            preds = (
                [held_prediction(None, g.n_frames, g.start, (g.height, g.width)) for g in clip.gops]
                if pure
                else list(base_layer(clip.gops, clip.info, args.qp))
            )
            net = MaskCodec(args.qp, pure, device, "net")
            exh = MaskCodec(args.qp, pure, device, "exhaustive")
            t_net = t_exh = 0.0
            agree = total = 0
            cost_net = cost_best = 0.0
            for gop, pred in zip(clip.gops, preds, strict=True):
                for group in plane_groups(gop, pred, device):
                    t0 = time.perf_counter()
                    a = net.select(group)
                    t1 = time.perf_counter()
                    costs = exh.rd_costs(group)
                    b = costs.argmin(1)
                    t2 = time.perf_counter()
                    t_net += t1 - t0
                    t_exh += t2 - t1
                    agree += int((a == b).sum())
                    total += a.numel()
                    cost_net += float(costs.gather(1, a[:, None]).sum())
                    cost_best += float(costs.min(1).values.sum())
            mode = "pure" if pure else "hybrid"
            print(f"{path.name[:27]:27s} {mode:7s} {t_net:5.2f}  {t_exh:5.1f}  "
                  f"{t_exh / t_net:7.1f}x  {agree / total:5.2f}  "
                  f"{100 * (cost_net / cost_best - 1):6.2f}")  # fmt: skip


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()

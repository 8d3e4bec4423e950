"""Mask selection: the selection network and the search on the fills vs the exhaustive search.

Times `MaskCodec.select` (the selection network; the RD search on the reconstruction network's
fixed fills) and the exhaustive RD search on the luma and chroma groups of held-out GOPs (pure
and hybrid), and reports how often they agree and the RD cost each choice adds: by the
search's own table of costs (each candidate on the whole group), and as coded (D + lambda R of
the group coded with the choice, against the exhaustive search's choice coded). The
BD-rate gap comes from `vcodec bench --codecs vcx,vcx-exhaustive,...` (vcx-exhaustive is an
anchor there).

    python benchmarks/mask_selector.py [CLIP ...] [--qp 32] [--device cpu]
        [--searches net,fills] [--recon-model recon-v2] [--modes hybrid,pure]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from recon_vs_interp import HELD_OUT
from shared_clips import SHARED_CLIPS

from vcodec.device import resolve_device
from vcodec.entropy import SymbolEncoder
from vcodec.eval.bench import load_clip
from vcodec.stages.masks import (
    RECON_MODEL,
    RECON_MODELS,
    MaskCodec,
    held_prediction,
    plane_groups,
)
from vcodec.train.data import base_layer


def coded_cost(codec: MaskCodec, group, index: torch.Tensor) -> float:
    """D + lambda R of the group coded with the candidates ``index``: the squared error of its
    reconstruction and the bits of its mask indices and samples as the range coder writes them."""
    enc = SymbolEncoder()
    out = codec.encode_group(group, enc, index)
    err = float(((out - group.x).square() * group.valid).sum())
    return err + codec.lam * 8 * len(enc.finish())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("clips", nargs="*", type=Path)
    ap.add_argument("--qp", type=int, default=32)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--searches", default="net,fills", help="selections to set against it")
    ap.add_argument("--recon-model", default=RECON_MODEL, choices=RECON_MODELS)
    ap.add_argument("--modes", default="hybrid,pure")
    args = ap.parse_args()
    device = resolve_device(args.device)
    searches = args.searches.split(",")
    print("clip                        mode    search  sel s  exh s  speed-up  agree  cost +%  "
          "coded +%")  # fmt: skip
    for path in args.clips or [SHARED_CLIPS / c for c in HELD_OUT]:
        clip = load_clip(path, args.frames)
        for mode in args.modes.split(","):
            pure = mode == "pure"
            preds = (
                [held_prediction(None, g.n_frames, g.start, (g.height, g.width)) for g in clip.gops]
                if pure
                else list(base_layer(clip.gops, clip.info, args.qp))
            )
            codecs = {
                s: MaskCodec(args.qp, pure, device, s, recon_model=args.recon_model)
                for s in ["exhaustive", *searches]
            }
            t_sel = dict.fromkeys(searches, 0.0)
            agree, cost = dict.fromkeys(searches, 0), dict.fromkeys(searches, 0.0)
            coded = dict.fromkeys(searches, 0.0)
            t_exh = total = cost_best = coded_best = 0.0
            for gop, pred in zip(clip.gops, preds, strict=True):
                for group in plane_groups(gop, pred, device):
                    t0 = time.perf_counter()
                    costs = codecs["exhaustive"].rd_costs(group)
                    best = costs.argmin(1)
                    t_exh += time.perf_counter() - t0
                    total += best.numel()
                    cost_best += float(costs.min(1).values.sum())
                    coded_best += coded_cost(codecs["exhaustive"], group, best)
                    for search in searches:
                        t0 = time.perf_counter()
                        chosen = codecs[search].select(group)
                        t_sel[search] += time.perf_counter() - t0
                        agree[search] += int((chosen == best).sum())
                        cost[search] += float(costs.gather(1, chosen[:, None]).sum())
                        coded[search] += coded_cost(codecs["exhaustive"], group, chosen)
            for search in searches:
                print(f"{path.name[:27]:27s} {mode:7s} {search:7s} {t_sel[search]:5.2f}  "
                      f"{t_exh:5.1f}  {t_exh / t_sel[search]:7.1f}x  {agree[search] / total:5.2f}  "
                      f"{100 * (cost[search] / cost_best - 1):6.2f}  "
                      f"{100 * (coded[search] / coded_best - 1):6.2f}")  # fmt: skip


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    main()

"""The parameter module's scale choice against the best choice found by search, on held-out clips.

Codes the first --frames frames of each held-out clip as one stream at --qp 22-50 at s = 1 and
s = 2 (the database `vcodec train params` learns from, built the same way; the module is given
the mean of the GOPs' features), then scores four choosers by
`vcodec.train.params.choice_report` (the PSNR-YUV a choice gives away at equal rate against the
other scale's curve): the shipped module, v0's rule (s = 2 from --qp 42 on frames of 240 lines
and up), always s = 1 and always s = 2; and per clip, each chooser's scale at every QP.

    python benchmarks/params_choice.py [CLIP ...] [--frames 48] [--cache held_out_params.npz]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from recon_vs_interp import HELD_OUT
from shared_clips import SHARED_CLIPS

from vcodec.models.registry import load
from vcodec.params import PARAMS_MODEL, SCALES
from vcodec.train.params import (
    ParamsDatabase,
    ParamsDataConfig,
    build_params_database,
    choice_report,
)

V0_MIN_QP, V0_MIN_HEIGHT = 42, 240  # v0's rule, replaced by params-v1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("clips", nargs="*", type=Path)
    ap.add_argument("--frames", type=int, default=48)  # as the bench's runs in models/README
    ap.add_argument("--cache", type=Path, default=Path("held_out_params.npz"))
    args = ap.parse_args()
    if args.cache.exists():
        db = ParamsDatabase.load(args.cache)
    else:
        clips = args.clips or [SHARED_CLIPS / c for c in HELD_OUT]
        db = build_params_database(clips, ParamsDataConfig(args.frames, window_stride=0))
        db.save(args.cache)
    with torch.no_grad():
        net = load(PARAMS_MODEL)
        learned = net(torch.from_numpy(db.features).float()).argmax(1).numpy()
    height = np.exp2(db.features[:, 4] * 12).round()
    v0 = ((db.qp >= V0_MIN_QP) & (height >= V0_MIN_HEIGHT)).astype(int)
    choosers = {
        PARAMS_MODEL: learned,
        "v0 rule": v0,
        **{f"always s={s}": np.full(len(db), i) for i, s in enumerate(SCALES)},
    }
    print(f"{len(db)} clip x QP rows; best is s=2 on {100 * (db.best == 1).mean():.0f} %")
    print("chooser        agree   mean dB   worst dB")
    for name, choice in choosers.items():
        r = choice_report(db, choice)
        print(f"{name:13} {r['agree_pct']:5.0f} % {r['mean_db']:8.3f} {r['worst_db']:9.3f}")
    qps = " ".join(f"{q:2d}" for q in np.unique(db.qp))
    for clip in np.unique(db.clip):
        rows = db.clip == clip
        r = choice_report(db.take(rows), learned[rows])
        print(f"{clip[:40]}: {PARAMS_MODEL} agrees on {r['agree_pct']:.0f} %, gives away "
              f"{r['mean_db']:.3f} dB mean, {r['worst_db']:.3f} worst")  # fmt: skip
        print(f"  {'qp':9} {qps}")
        for name, choice in (("search", db.best), (PARAMS_MODEL, learned)):
            print(f"  {name:9} " + " ".join(f"{SCALES[c]:2d}" for c in choice[rows]))


if __name__ == "__main__":
    main()

"""The parameter module's scale choice against the best choice found by search, on held-out clips.

Codes the first --frames frames of each held-out clip as one stream at --qp 22-50 at s = 1 and
s = 2 (the database `vcodec train params` learns from, built the same way), then scores five
choosers by `vcodec.train.params.choice_report` (the PSNR-YUV a choice gives away at equal rate
against the other scale's curve): the shipped module as the encoder asks it (on the clip's
first GOP, `--scale auto`), the same module on the mean of the window's GOP features (as it was
trained), v0's rule (s = 2 from --qp 42 on frames of 240 lines and up), always s = 1 and
always s = 2; and per clip, the search's and the module's scale at every QP.

    python benchmarks/params_choice.py [CLIP ...] [--frames 48] [--cache held_out_params.npz]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from recon_vs_interp import HELD_OUT
from shared_clips import SHARED_CLIPS

from vcodec.frames import GOP_SIZE
from vcodec.io import open_video
from vcodec.models.registry import load
from vcodec.stages.scale import PARAMS_MODEL, SCALES, ParamModule
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
    clips = args.clips or [SHARED_CLIPS / c for c in HELD_OUT]
    if args.cache.exists():
        db = ParamsDatabase.load(args.cache)
    else:
        db = build_params_database(clips, ParamsDataConfig(args.frames, window_stride=0))
        db.save(args.cache)
    learned = encoder_choice(db, clips)
    with torch.no_grad():
        net = load(PARAMS_MODEL)
        on_mean = net(torch.from_numpy(db.features).float()).argmax(1).numpy()
    height = np.exp2(db.features[:, 4] * 12).round()
    v0 = ((db.qp >= V0_MIN_QP) & (height >= V0_MIN_HEIGHT)).astype(int)
    choosers = {
        PARAMS_MODEL: learned,
        f"{PARAMS_MODEL} (mean)": on_mean,
        "v0 rule": v0,
        **{f"always s={s}": np.full(len(db), i) for i, s in enumerate(SCALES)},
    }
    print(f"{len(db)} clip x QP rows; best is s=2 on {100 * (db.best == 1).mean():.0f} %")
    print("chooser           agree   mean dB   worst dB")
    for name, choice in choosers.items():
        r = choice_report(db, choice)
        print(f"{name:16} {r['agree_pct']:5.0f} % {r['mean_db']:8.3f} {r['worst_db']:9.3f}")
    qps = " ".join(f"{q:2d}" for q in np.unique(db.qp))
    for clip in np.unique(db.clip):
        rows = db.clip == clip
        r = choice_report(db.take(rows), learned[rows])
        print(f"{clip[:40]}: {PARAMS_MODEL} agrees on {r['agree_pct']:.0f} %, gives away "
              f"{r['mean_db']:.3f} dB mean, {r['worst_db']:.3f} worst")  # fmt: skip
        print(f"  {'qp':16} {qps}")
        shown = {"search": db.best, PARAMS_MODEL: learned, f"{PARAMS_MODEL} (mean)": on_mean}
        for name, choice in shown.items():
            print(f"  {name:16} " + " ".join(f"{SCALES[c]:2d}" for c in choice[rows]))


def encoder_choice(db: ParamsDatabase, clips: list[Path]) -> np.ndarray:
    """The scale index the encoder's `--scale auto` picks for each row: the shipped module
    on the clip's first GOP (`codec/encoder.py`), at the row's QP."""
    module = ParamModule()
    first = {}
    for clip in clips:
        with open_video(clip) as reader:
            first[clip.name] = next(reader.gops(GOP_SIZE))
    return np.array(
        [SCALES.index(module.scale(first[c], int(q))) for c, q in zip(db.clip, db.qp, strict=True)]
    )


if __name__ == "__main__":
    main()

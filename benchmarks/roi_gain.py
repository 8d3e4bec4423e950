"""ROI on vs off at the same bitrate: what `--roi motion` buys inside the regions of interest
and what the background pays (issue 4: ROI-PSNR at least +2 dB at the same total rate).

Runs the bench's `vcx-noparams` and `vcx-roi` (masks and post-processing as the encoder's
defaults; both at s = 1, as `--roi` keeps it, so that the ROI is all that differs) on the clips
at every --qp and reports, per clip, the BD-PSNR (dB at the same rate, Bjøntegaard) of
ROI-PSNR, background PSNR and whole-frame PSNR-YUV, with the ROI's share of the frame. Both are
measured on the same maps (the motion finder on the source, as `vcodec bench` does).

    python benchmarks/roi_gain.py [CLIP ...] [--frames 32] [--qps 22,27,32,37,42]
"""

from __future__ import annotations

import numpy as np
from recon_vs_interp import HELD_OUT
from shared_clips import clip_parser, clip_paths

from vcodec.eval.bench import BenchConfig, bench_point, load_clip, with_rois
from vcodec.eval.report import bd_psnr, bd_rate
from vcodec.stages.roi import MotionFinder

# held out from every training set, plus a traffic camera (nothing here is trained on clips)
DEFAULT_CLIPS = (*HELD_OUT, "bgslib_highway_320x240_1700f.avi")


def _cell(value: float | None, unit: str = " dB") -> str:
    return "   n/a" if value is None else f"{value:+6.2f}{unit}"


def main() -> None:
    ap = clip_parser(__doc__, 32, "22,27,32,37,42")
    args = ap.parse_args()
    qps = tuple(args.qps)
    codecs = ("vcx-noparams", "vcx-roi")
    config = BenchConfig(codecs=codecs, qps=qps, frames=args.frames, device="cpu")
    print("clip                         ROI share  ROI-PSNR   BG-PSNR  PSNR-YUV  BD-rate ROI")
    gains = []
    for path in clip_paths(args, DEFAULT_CLIPS):
        clip = with_rois(load_clip(path, args.frames), MotionFinder())
        curves = {c: [bench_point(clip, c, q, config)[0] for q in qps] for c in config.codecs}
        off, on = curves["vcx-noparams"], curves["vcx-roi"]
        share = float(np.mean([r.coverage for r in clip.rois]))
        roi = bd_psnr(off, on, "psnr_roi") if 0 < share < 1 else None
        gains.append(roi)
        print(
            f"{path.name[:28]:28} {100 * share:8.1f} % {_cell(roi)} "
            f"{_cell(bd_psnr(off, on, 'psnr_bg'))} {_cell(bd_psnr(off, on, 'psnr_yuv'))} "
            f"{_cell(bd_rate(off, on, 'psnr_roi'), ' %')}",
            flush=True,
        )
    measured = [g for g in gains if g is not None]
    if measured:
        print(f"mean ROI-PSNR gain over {len(measured)} clips with an ROI: "
              f"{np.mean(measured):+.2f} dB")  # fmt: skip


if __name__ == "__main__":
    main()

"""What the post-processing network buys on the base layer alone, per QP and scale.

For held-out clips, codes the first frames with vcodec's own base layer (masks off) at each
--qp and scale, then reports PSNR-YUV and PSNR-Y of the bicubic-upscaled base layer before and
after the post-processing network (--model, post-v1 unless named), with the bits per pixel of
the stream and the network's speed.

    python benchmarks/post_gain.py [CLIP ...] [--frames 32] [--qps 22,27,32,37,42,47]
        [--model post-v2]
"""

from __future__ import annotations

import io
import time

import numpy as np
import torch
from recon_vs_interp import HELD_OUT
from shared_clips import clip_parser, clip_paths

from vcodec.eval.bench import load_clip
from vcodec.metrics import psnr, psnr_yuv
from vcodec.pipeline.config import EncodeConfig
from vcodec.pipeline.decoder import VcxDecoder
from vcodec.pipeline.encoder import encode_gops
from vcodec.stages.post import POST_MODEL, POST_MODELS, PostProcessor
from vcodec.stages.scale import base_qp


def quality(ref, test) -> tuple[float, float]:
    """(PSNR-YUV, PSNR-Y) over all frames of GOP lists."""
    pairs = list(zip(ref, test, strict=True))
    per = [np.concatenate([psnr(getattr(r, p), getattr(t, p)) for r, t in pairs]) for p in "yuv"]
    return float(psnr_yuv(*per).mean()), float(per[0].mean())


def main() -> None:
    ap = clip_parser(__doc__, 32, "22,27,32,37,42,47")
    ap.add_argument("--model", default=POST_MODEL, choices=POST_MODELS)
    args = ap.parse_args()
    post = PostProcessor(torch.device("cpu"), name=args.model)
    print("clip                        qp  s   bpp     YUV before  after   gain   Y gain  post fps")
    for path in clip_paths(args, HELD_OUT):
        clip = load_clip(path, args.frames)
        for qp in args.qps:
            for scale in (1, 2):
                buf = io.BytesIO()
                config = EncodeConfig(qp=qp, base="x265", scale=str(scale), masks=False, post=False)
                encode_gops(iter(clip.gops), clip.info, buf, config)
                bpp = 8 * len(buf.getvalue()) / sum(g.y.size for g in clip.gops)
                buf.seek(0)
                pred = list(VcxDecoder(buf, "cpu").gops())
                start = time.perf_counter()
                cleaned = [post(g, base_qp(qp, scale), scale) for g in pred]
                fps = sum(g.n_frames for g in pred) / (time.perf_counter() - start)
                before, after = quality(clip.gops, pred), quality(clip.gops, cleaned)
                print(f"{path.name[:27]:27} {qp:3} {scale:2} {bpp:7.4f} {before[0]:10.2f} "
                      f"{after[0]:7.2f} {after[0] - before[0]:+6.2f} {after[1] - before[1]:+7.2f}"
                      f" {fps:8.1f}")  # fmt: skip


if __name__ == "__main__":
    main()

"""What temporal scaling does to the frames it drops, and to the rate (seed 001's evaluation).

For each clip and --qp, codes the first frames three ways (masks and post-processing off, so
the stage is seen alone): every frame in the base layer (step 1), and step 2 in every GOP with
the dropped frames predicted by `predict-v1` or by the plain mean of their neighbours (the
network off). On the dropped frames it reports PSNR-YUV and seed 001's feature cosine
similarity to the original (NanoDet-m's outputs, offline weights in ../shared/data/weights), and
the stream's bits per pixel. The encoder's own choice (`_step`) decides when step 2 is used;
here it is forced, to see what each GOP would cost.

    python benchmarks/temporal_gain.py [CLIP ...] [--frames 32] [--qps 27,37,47]
"""

from __future__ import annotations

import io

import numpy as np
from recon_vs_interp import HELD_OUT
from shared_clips import SHARED_CLIPS, clip_parser, clip_paths

from vcodec.eval.bench import load_clip
from vcodec.frames import Gop
from vcodec.metrics import psnr, psnr_yuv
from vcodec.models.detectors import NanoDet, cosine_similarity
from vcodec.models.postprocess import PostNet
from vcodec.pipeline import decoder as vcx_decoder
from vcodec.pipeline import encoder as vcx_encoder
from vcodec.stages.temporal import FramePredictor, dropped_frames

NANODET = SHARED_CLIPS.parent / "weights" / "nanodet-m_coco_onnx" / "nanodet-m_320.onnx"


def code(clip, qp: int, step: int, net: bool) -> tuple[list[Gop], float]:
    """Decoded GOPs and bpp with every GOP at ``step`` (``net``: predict-v1, else the mean)."""
    forced = vcx_encoder._HybridEncoder._step
    vcx_encoder._HybridEncoder._step = lambda self, gop, scale: step
    plain = vcx_decoder.FramePredictor
    if not net:
        vcx_decoder.FramePredictor = lambda device, dtype: FramePredictor(device, dtype, PostNet())
    try:
        buf = io.BytesIO()
        config = vcx_encoder.EncodeConfig(
            qp=qp, base="x265", scale="1", masks=False, post=False, device="cpu"
        )
        vcx_encoder.encode_gops(clip.gops, clip.info, buf, config)
        bpp = 8 * buf.tell() / sum(g.y.size for g in clip.gops)
        buf.seek(0)
        return list(vcx_decoder.VcxDecoder(buf, "cpu").gops()), bpp
    finally:
        vcx_encoder._HybridEncoder._step = forced
        vcx_decoder.FramePredictor = plain


def dropped(gops: list[Gop]) -> Gop:
    """The frames step 2 drops, of every GOP, as one GOP."""
    picks = [(g, dropped_frames(g.n_frames, 2)) for g in gops]
    return Gop(*(np.concatenate([getattr(g, p)[i] for g, i in picks]) for p in "yuv"))


def scores(ref: Gop, test: Gop, detector: NanoDet | None, ref_features) -> tuple[float, float]:
    per = [psnr(getattr(ref, p), getattr(test, p)) for p in "yuv"]
    cos = float("nan")
    if detector is not None:
        cos = float(cosine_similarity(ref_features, detector.features(test)).mean())
    return float(psnr_yuv(*per).mean()), cos


def main() -> None:
    ap = clip_parser(__doc__, 32, "27,37,47")
    args = ap.parse_args()
    detector = NanoDet(NANODET) if NANODET.is_file() else None
    print(
        "clip                      qp   bpp s=1  bpp s=2 | dropped frames: PSNR-YUV coded / "
        "mean / predict-v1 | feature cosine coded / mean / predict-v1"
    )
    for path in clip_paths(args, HELD_OUT):
        clip = load_clip(path, args.frames)
        ref = dropped(clip.gops)
        ref_features = detector.features(ref) if detector else None
        for qp in args.qps:
            full, bpp1 = code(clip, qp, 1, True)
            net, bpp2 = code(clip, qp, 2, True)
            mean, _ = code(clip, qp, 2, False)
            rows = [scores(ref, dropped(g), detector, ref_features) for g in (full, mean, net)]
            print(f"{path.name[:25]:25} {qp:3} {bpp1:8.4f} {bpp2:8.4f} | "
                  + " / ".join(f"{r[0]:6.2f}" for r in rows) + " | "
                  + " / ".join(f"{r[1]:.4f}" for r in rows), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

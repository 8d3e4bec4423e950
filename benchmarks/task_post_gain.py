"""What the post-processing networks do for a detector, at the same bits: each clip coded once
per QP (vcx on an x264 base, NanoDet's boxes as ROI, post-processing and Wiener filters off),
then the decoded frames scored as they are, through `post-v1` and through `post-task-v1` (the
whole of each network's correction, strength 1). mAP@0.5 against the clips' labels (or pseudo
ground truth), each clip and all clips pooled; PSNR-YUV beside it.

    python benchmarks/task_post_gain.py ../shared/data/labeled/MOT17-mini/train/MOT17-* \\
        --detector ../shared/data/weights/nanodet-m_coco_onnx/nanodet-m_416.onnx
"""

from __future__ import annotations

import argparse
import io
from dataclasses import replace
from pathlib import Path

import torch

from vcodec.eval.bench import load_clip
from vcodec.eval.scoring import ground_truth, pooled, score
from vcodec.eval.tasks import expand_inputs
from vcodec.metrics import MetricAccumulator
from vcodec.models.detectors import load_detector
from vcodec.pipeline.config import EncodeConfig
from vcodec.pipeline.decoder import VcxDecoder
from vcodec.pipeline.encoder import encode_gops
from vcodec.stages.post import POST_MODELS, PostProcessor
from vcodec.stages.scale import base_qp

CPU = torch.device("cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="+", type=Path)
    parser.add_argument("--detector", required=True, help="NanoDet .onnx")
    parser.add_argument("--qps", default="27,32,37,42,47")
    parser.add_argument("--frames", type=int, default=32)
    args = parser.parse_args()
    detector = load_detector(f"onnx-nanodet:{args.detector}", "cpu")
    clips = [load_clip(p, args.frames) for p in expand_inputs(args.clips)]
    clips = [
        replace(c, truth=ground_truth("detect", detector, c.gops, c.truth, c.name)) for c in clips
    ]
    nets = {name: PostProcessor(CPU, name=name) for name in POST_MODELS}
    print(f"ground truth: {', '.join(sorted({c.truth.layout for c in clips}))}")
    print("clip qp kbps | mAP@0.5 (PSNR-YUV): base layer / " + " / ".join(nets))
    for qp in map(int, args.qps.split(",")):
        found: dict[str, list] = {name: [] for name in ("none", *nets)}
        for clip in clips:
            config = EncodeConfig(qp=qp, base="x264", roi="nanodet", roi_model=args.detector,
                                  post=False, wiener=False, masks=False, device="cpu")  # fmt: skip
            buf = io.BytesIO()
            encode_gops(clip.gops, clip.info, buf, config)
            n_bytes = buf.getbuffer().nbytes
            buf.seek(0)
            decoded = list(VcxDecoder(buf, "cpu").gops())
            versions = {"none": decoded}
            for name, net in nets.items():  # scale 1 (the encoder's default): qp as coded
                versions[name] = [net(g, base_qp(qp, 1), 1) for g in decoded]
            cells = []
            for name, gops in versions.items():
                task = score("detect", detector, gops, clip.truth)
                found[name].append(task)
                acc = MetricAccumulator()
                for ref, test in zip(clip.gops, gops, strict=True):
                    acc.add(ref, test, device="cpu")
                cells.append(f"{task.fields['map50']:.2f} ({acc.mean()['psnr_yuv']:.2f})")
            kbps = 8 * n_bytes / (clip.frames / float(clip.info.fps)) / 1000
            print(f"{clip.name} {qp} {kbps:.0f} | " + " / ".join(cells), flush=True)
        if len(clips) > 1:
            truths = [c.truth for c in clips]
            cells = [f"{pooled('detect', f, truths)['map50']:.2f}" for f in found.values()]
            print(f"POOLED {qp} | " + " / ".join(cells), flush=True)


if __name__ == "__main__":
    main()

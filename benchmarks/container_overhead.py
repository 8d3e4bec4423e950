"""What the .vcx container and side info cost over the bare base-layer stream, at --scale 1.

For each clip and QP: encodes with --scale 1, then compares the whole .vcx size with the bytes
of the x265 packets inside it (the bare elementary stream), and with a separate bare x265
encode at the same CRF (x265 with frame threads is not bit-reproducible, so that one is noisy).

    python benchmarks/container_overhead.py [CLIP ...] [--frames 50]
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from shared_clips import SHARED_CLIPS

from vcodec.bitstream.container import BaseData, VcxReader
from vcodec.eval.bench import load_clip
from vcodec.pipeline.config import EncodeConfig
from vcodec.pipeline.encoder import encode_gops
from vcodec.stages.base_layer import BaseEncoder
from vcodec.stages.scale import coded_size, pad_gop

DEFAULT_CLIPS = [
    "carphone_pristine.mp4",
    "bikes.mp4",
    "intel_car-detection_768x432.mp4",
    "bigbuckbunny.mp4",
]
QPS = (27, 32, 37)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("clips", nargs="*", type=Path)
    ap.add_argument("--frames", type=int, default=50)
    args = ap.parse_args()
    print("clip                 qp  vcx bytes  packets  overhead  bare x265  vs bare")
    for path in args.clips or [SHARED_CLIPS / c for c in DEFAULT_CLIPS]:
        clip = load_clip(path, args.frames)
        for qp in QPS:
            buf = io.BytesIO()
            encode_gops(clip.gops, clip.info, buf, EncodeConfig(qp=qp, base="x265", scale="1"))
            chunks = VcxReader(io.BytesIO(buf.getvalue()))
            inner = sum(len(c.data) for c in chunks if isinstance(c, BaseData))
            h, w = coded_size(clip.info.height, clip.info.width, 1)
            enc = BaseEncoder("x265", w, h, clip.info.fps, qp)
            bare = sum(len(p) for g in clip.gops for p in enc.encode(pad_gop(g, h, w)))
            bare += sum(len(p) for p in enc.flush())
            total = buf.getbuffer().nbytes
            print(
                f"{clip.name[:20]:20s} {qp:3d} {total:10d} {inner:8d} "
                f"{100 * (total - inner) / inner:7.2f}% {bare:10d} "
                f"{100 * (total - bare) / bare:+7.2f}%"
            )


if __name__ == "__main__":
    main()

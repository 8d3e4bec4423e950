"""How close --target-size lands (three sizes a clip: 0.6x, 1x and 1.6x the video bytes at
--qp 32) and how close each segment of a --target-psnr encode lands, with the seconds each
took beside one plain encode's. Prints one JSON line per encode.

    python benchmarks/targets.py CLIP [CLIP ...] --frames 240 --segment-seconds 4
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np

from vcodec.frames import PSNR_YUV_WEIGHTS
from vcodec.io import open_video
from vcodec.pipeline.config import EncodeConfig
from vcodec.pipeline.decoder import VcxDecoder
from vcodec.pipeline.encoder import encode
from vcodec.pipeline.info import describe

SIZE_FACTORS = (0.6, 1.0, 1.6)


def frames_of(gops) -> list[tuple[np.ndarray, ...]]:
    return [f for g in gops for f in zip(*g.planes(), strict=True)]


def segment_psnrs(src: Path, vcx: Path, frames: int) -> list[float]:
    """PSNR-YUV of each segment of ``vcx`` against the source's frames."""
    with open_video(src) as reader:
        source = frames_of(reader.gops(16, frames))
    with open(vcx, "rb") as f:
        decoded = frames_of(VcxDecoder(f, "cpu").gops())
    out = []
    for segment in describe(vcx)["segments"]:
        first, count = segment["first_frame"], segment["frames"]
        errors = np.zeros(3)
        for ref, test in zip(
            source[first : first + count], decoded[first : first + count], strict=True
        ):
            errors += [
                np.mean((a.astype(np.float64) - b) ** 2) for a, b in zip(ref, test, strict=True)
            ]
        mse = float(np.dot(PSNR_YUV_WEIGHTS, errors / count) / sum(PSNR_YUV_WEIGHTS))
        out.append(round(10 * math.log10(255**2 / mse), 2))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="+")
    parser.add_argument("--frames", type=int, default=240)
    parser.add_argument("--segment-seconds", type=float, default=4.0)
    parser.add_argument("--psnr", default="38,42")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="vcodec-targets-"))
    config = EncodeConfig(frames=args.frames, segment_seconds=args.segment_seconds, threads=1)
    for clip in map(Path, args.clips):
        out = folder / f"{clip.stem}.vcx"
        plain = encode(clip, out, config, force=True)
        for factor in SIZE_FACTORS:
            size = int(factor * (plain.bytes - plain.audio_bytes)) + plain.audio_bytes
            got = encode(clip, out, config, force=True, target_size=str(size))
            print(json.dumps({
                "clip": clip.name, "target_size": size, "bytes": got.bytes,
                "error_percent": round(100 * (got.bytes / size - 1), 2),
                "seconds": round(got.seconds, 1), "plain_seconds": round(plain.seconds, 1),
                "segments": len(describe(out)["segments"]),
            }), flush=True)  # fmt: skip
        for psnr in map(float, args.psnr.split(",")):
            start = time.perf_counter()
            got = encode(clip, out, config, force=True, target_psnr=psnr)
            seconds = time.perf_counter() - start
            reached = segment_psnrs(clip, out, args.frames)
            print(json.dumps({
                "clip": clip.name, "target_psnr": psnr, "segment_psnr": reached,
                "errors_db": [round(p - psnr, 2) for p in reached], "bytes": got.bytes,
                "seconds": round(seconds, 1), "plain_seconds": round(plain.seconds, 1),
            }), flush=True)  # fmt: skip


if __name__ == "__main__":
    main()

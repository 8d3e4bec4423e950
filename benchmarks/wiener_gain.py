"""The Wiener filter alone on bare x265 output: per clip and QP, what its payloads cost (bytes,
with chunk framing, against the base layer's) and what they take off the error (dB of the
PSNR-YUV-weighted MSE, the same base layer with and without the filters), and the encoder's
and decoder's time for them. Also checks that the decoder rebuilds the encoder's pictures.

    python benchmarks/wiener_gain.py [CLIP ...] [--frames 48] [--qps 27,37,42]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from recon_vs_interp import HELD_OUT
from shared_clips import SHARED_CLIPS

from vcodec.frames import GOP_SIZE, Gop, yuv_mse
from vcodec.io import open_video
from vcodec.stages.base_layer import BaseDecoder, BaseEncoder
from vcodec.stages.scale import coded_size, crop_gop, pad_gop
from vcodec.stages.wiener import CHUNK_FRAMING_BYTES, WienerEncoder, apply_gop
from vcodec.stages.wiener_payload import WienerDecoder


def measure(path: Path, frames: int, qp: int) -> str:
    with open_video(path) as reader:
        gops = list(reader.gops(GOP_SIZE, frames))
        info = reader.info
    h, w = coded_size(info.height, info.width, 1)
    encoder = BaseEncoder("x265", w, h, info.fps, qp, "medium")
    packets = [p for g in gops for p in encoder.encode(pad_gop(g, h, w))] + encoder.flush()
    decoder = BaseDecoder("x265")
    decoded = decoder.decode(b"".join(packets)) + decoder.flush()
    fitter, reader = WienerEncoder(qp), WienerDecoder()
    before = after = extra = enc_s = dec_s = 0.0
    planes_on = np.zeros(3, int)
    for gop in gops:
        base = Gop.from_frames(decoded[gop.start : gop.start + gop.n_frames], gop.start)
        base = crop_gop(base, info.height, info.width)
        start = time.perf_counter()
        payload, filtered = fitter.encode_gop(gop, base)
        enc_s += time.perf_counter() - start
        if payload is not None:
            extra += len(payload) + CHUNK_FRAMING_BYTES
            start = time.perf_counter()
            filters = reader.read(payload)
            rebuilt = apply_gop(base, filters)
            dec_s += time.perf_counter() - start
            if not all(
                np.array_equal(a, b)
                for a, b in zip(rebuilt.planes(), filtered.planes(), strict=True)
            ):
                raise SystemExit(f"{path.name} q{qp}: the decoder's pictures differ")
            planes_on += [f is not None for f in filters]
        before += yuv_mse(gop, base) * gop.n_frames
        after += yuv_mse(gop, filtered) * gop.n_frames
    n = sum(g.n_frames for g in gops)
    base_bytes = sum(len(p) for p in packets)
    return (
        f"{path.name[:28]:28s} q{qp:2d} base {base_bytes:7d} B  wiener {int(extra):5d} B "
        f"({100 * extra / base_bytes:.2f} %)  gain {10 * np.log10(before / after):+.3f} dB  "
        f"GOPs filtered Y/U/V {planes_on[0]}/{planes_on[1]}/{planes_on[2]} of {len(gops)}  "
        f"enc {1000 * enc_s / n:.0f} ms/frame, dec {1000 * dec_s / n:.0f} ms/frame"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="*", type=Path)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--qps", default="27,37,42")
    args = parser.parse_args()
    clips = args.clips or [SHARED_CLIPS / name for name in HELD_OUT]
    for clip in clips:
        for qp in (int(q) for q in args.qps.split(",")):
            print(measure(clip, args.frames, qp), flush=True)


if __name__ == "__main__":
    main()

"""Encode and decode speed of vcx against its base layer alone (DESIGN §9's budgets).

    python benchmarks/speed.py [--sizes 640x360,1280x720,1920x1080] [--clip PATH ...]
        [--frames 64] [--qp 32] [--speeds fast,medium,slow] [--workdir /tmp/vcodec_speed]

``--base`` is vcodec encode's (default auto: the base layer is then the one the stream names).
Each clip is written once as y4m (the built-in sample scene at each of ``--sizes``, and each
``--clip`` at its own size), so reading it costs little and alike for both sides. Then, each in
a fresh process, wall clock and max RSS: the base layer alone (the same encoder, preset and
CRF as vcx's base layer at s = 1, reading the same file), `vcodec encode --speed S` and
`vcodec decode` of that stream to y4m. Times are the library's own (what the commands print),
without the process's start (~1 s of importing torch), which the JSON gives as well.
Budgets: encode at most 2x the base layer's time; decode at least 30 fps at 720p. Run it on
an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ENCODE_BUDGET = 2.0  # vcx encode time / base layer's own encode time, at most
DECODE_FPS_720P = 30.0  # frames per second at 1280x720, at least


def child(args: list[str]) -> tuple[float, float, str]:
    """Run a command in a fresh process; its (wall seconds, max RSS MiB, stdout)."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
    printed = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if status:
        raise SystemExit(f"failed: {' '.join(args)}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024, printed


def inner_seconds(printed: str, frames: int) -> float:
    """The seconds a vcodec command spent inside the library (its printed fps; the process's
    start, about 1 s of importing torch, excluded)."""
    fps = float(re.search(r"([0-9.]+) fps", printed).group(1))
    return frames / fps


def make_clip(path: Path, width: int, height: int, frames: int) -> None:
    from vcodec.eval.sample import make_sample
    from vcodec.writers import open_writer

    info, gops = make_sample(width, height, frames)
    with open_writer(path, info) as writer:
        for gop in gops:
            writer.write(gop)


def copy_clip(src: Path, path: Path, frames: int) -> None:
    from vcodec.io import open_video
    from vcodec.writers import open_writer

    with open_video(src) as reader, open_writer(path, reader.info) as writer:
        for gop in reader.gops(16, frames):
            writer.write(gop)


def base_only(clip: Path, frames: int, qp: int, base: str, preset: str) -> None:
    """The base layer alone on ``clip``: read, encode, flush (what vcx's base layer does, with
    its default --tune)."""
    from vcodec.io import open_video
    from vcodec.pipeline.config import EncodeConfig
    from vcodec.stages.base_layer import BaseEncoder

    tune = EncodeConfig(base=base, preset=preset).validate().tune

    start = time.perf_counter()
    with open_video(clip) as reader:
        info = reader.info
        encoder = BaseEncoder(base, info.width, info.height, info.fps, qp, preset, tune=tune)
        size, n = 0, 0
        for gop in reader.gops(16, frames):
            size += sum(map(len, encoder.encode(gop)))
            n += gop.n_frames
        size += sum(map(len, encoder.flush()))
    print(f"{size} bytes, {n / (time.perf_counter() - start)} fps")


def measure(clip: Path, args: argparse.Namespace) -> dict:
    from vcodec.bitstream.container import VcxReader
    from vcodec.io import open_video

    with open_video(clip) as reader:
        width, height = reader.info.width, reader.info.height
    me = [sys.executable, __file__]
    common = ["--frames", str(args.frames), "--qp", str(args.qp)]
    row: dict = {"clip": clip.name, "size": f"{width}x{height}", "frames": args.frames}
    vcodec = [sys.executable, "-m", "vcodec.cli.main"]
    bases: dict[str, tuple[float, float]] = {}  # base codec: its own (seconds, wall seconds)
    for speed in args.speeds:
        vcx, y4m = args.workdir / f"{clip.stem}_{speed}.vcx", args.workdir / "decoded.y4m"
        enc = [*vcodec, "encode", str(clip), "-o", str(vcx), *common, "--speed", speed]
        enc_wall, enc_mib, printed = child(
            [*enc, "--base", args.base, "--device", "cpu", "--force"]
        )
        enc_s = inner_seconds(printed, args.frames)
        with open(vcx, "rb") as f:  # --base auto: the base the encoder took
            base = VcxReader(f).header.base_codec
        if base not in bases:  # the base layer alone, the same encoder as the stream's
            base_wall, base_mib, printed = child(
                [*me, "--base-only", str(clip), *common, "--base", base]
            )
            bases[base] = inner_seconds(printed, args.frames), base_wall
            row[f"{base}_alone"] = {
                "seconds": round(bases[base][0], 2),
                "fps": round(args.frames / bases[base][0], 2),
                "wall_seconds": round(base_wall, 2),
                "rss_mib": round(base_mib),
            }
        base_s, base_wall = bases[base]
        dec_wall, dec_mib, printed = child(
            [*vcodec, "decode", str(vcx), "-o", str(y4m), "--device", "cpu", "--force"]
        )
        dec_s = inner_seconds(printed, args.frames)
        row[speed] = {
            "base": base,
            "encode_seconds": round(enc_s, 2),
            "encode_wall_seconds": round(enc_wall, 2),
            "encode_fps": round(args.frames / enc_s, 2),
            "encode_vs_base": round(enc_s / base_s, 2),
            "encode_wall_vs_base": round(enc_wall / base_wall, 2),
            "encode_rss_mib": round(enc_mib),
            "decode_fps": round(args.frames / dec_s, 1),
            "decode_wall_fps": round(args.frames / dec_wall, 1),
            "decode_rss_mib": round(dec_mib),
            "bytes": vcx.stat().st_size,
        }
        y4m.unlink()
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="640x360,1280x720,1920x1080")
    ap.add_argument("--clip", type=Path, action="append", default=[])
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--qp", type=int, default=32)
    ap.add_argument("--base", default="auto", help="vcodec encode's --base (default: its own)")
    ap.add_argument("--speeds", default="medium")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/vcodec_speed"))
    ap.add_argument("--json", type=Path, help="also write the table here")
    ap.add_argument("--base-only", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--make", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.base_only:
        return base_only(args.base_only, args.frames, args.qp, args.base, "medium")
    if args.make:
        return make_clip(Path(args.make[0]), int(args.make[1]), int(args.make[2]), args.frames)
    args.speeds = args.speeds.split(",")
    args.workdir.mkdir(parents=True, exist_ok=True)
    clips = []
    for size in filter(None, args.sizes.split(",")):
        width, height = map(int, size.split("x"))
        clip = args.workdir / f"sample_{width}x{height}_{args.frames}.y4m"
        if not clip.exists():  # in a child, so that this process stays small
            child([sys.executable, __file__, "--make", str(clip), str(width), str(height),
                   "--frames", str(args.frames)])  # fmt: skip
        clips.append(clip)
    for src in args.clip:
        clip = args.workdir / f"{src.stem}_{args.frames}.y4m"
        if not clip.exists():
            copy_clip(src, clip, args.frames)
        clips.append(clip)
    rows = []
    for clip in clips:
        row = measure(clip, args)
        rows.append(row)
        for speed in args.speeds:
            r = row[speed]
            alone = row[f"{r['base']}_alone"]
            ok_enc = "ok" if r["encode_vs_base"] <= ENCODE_BUDGET else "OVER"
            print(
                f"{row['clip']} {row['size']} x{row['frames']} --speed {speed}: base {r['base']} "
                f"{alone['seconds']} s ({alone['fps']} fps), vcx {r['encode_seconds']} s "
                f"= {r['encode_vs_base']}x base [{ok_enc}] (processes: "
                f"{r['encode_wall_vs_base']}x), encode RSS {r['encode_rss_mib']} MiB; decode "
                f"{r['decode_fps']} fps ({r['decode_wall_fps']} with start), RSS "
                f"{r['decode_rss_mib']} MiB; "
                f"{r['bytes']:,} bytes",
                flush=True,
            )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

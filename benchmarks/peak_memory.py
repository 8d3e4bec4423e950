"""Peak memory (max RSS) of `vcodec encode` and `vcodec decode` (DESIGN §9: under 2 GB at
1080p, flat in the clip's length, 4K works).

    python benchmarks/peak_memory.py [--sizes 1920x1080,3840x2160] [--frames 64,256]
        [--speeds medium,slow] [--qp 32] [--workdir /tmp/vcodec_mem] [--json PATH]

For every size and length, builds the sample scene (written once as lossless mp4, in a child
process so the parent stays small: a forked child's max RSS starts from its parent's), then
for every speed runs `vcodec encode --speed S` and `vcodec decode` of that stream to y4m in
child processes and reads each one's max RSS from getrusage.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from vcodec.eval.sample import make_sample
from vcodec.writers import open_writer

BUDGET_MIB = 2048  # DESIGN §9: peak RSS under 2 GB at 1080p


def child_peak_mib(args: list[str]) -> tuple[float, float]:
    """Run one CLI call in a fresh process; return its (max RSS MiB, seconds)."""
    start = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "vcodec.cli.main", *args], stdout=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(child.pid, 0)
    if status:
        raise SystemExit(f"vcodec {' '.join(args)} failed")
    return usage.ru_maxrss / 1024, time.perf_counter() - start


def make_clip(path: Path, width: int, height: int, frames: int) -> None:
    if path.exists():
        return
    subprocess.run(
        [sys.executable, __file__, "--make-clip", str(path), "--sizes", f"{width}x{height}",
         "--frames", str(frames)],
        check=True,
    )  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="1920x1080,3840x2160")
    ap.add_argument("--frames", default="64,256", help="clip lengths, comma-separated")
    ap.add_argument("--speeds", default="medium,slow")
    ap.add_argument("--qp", type=int, default=32)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/vcodec_mem"))
    ap.add_argument("--json", type=Path, help="also write the rows here")
    ap.add_argument("--make-clip", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    sizes = [tuple(map(int, s.split("x"))) for s in args.sizes.split(",")]
    lengths = [int(f) for f in args.frames.split(",")]
    if args.make_clip:
        info, gops = make_sample(*sizes[0], lengths[0])
        with open_writer(args.make_clip, info, lossless=True) as writer:
            for gop in gops:
                writer.write(gop)
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    rows = []
    for width, height in sizes:
        for frames in lengths:
            clip = args.workdir / f"sample_{width}x{height}_{frames}.mp4"
            make_clip(clip, width, height, frames)
            for speed in args.speeds.split(","):
                vcx, out = args.workdir / f"{speed}.vcx", args.workdir / "out.y4m"
                enc = child_peak_mib(
                    ["encode", str(clip), "-o", str(vcx), "--qp", str(args.qp),
                     "--speed", speed, "--device", "cpu", "--force"]
                )  # fmt: skip
                dec = child_peak_mib(
                    ["decode", str(vcx), "-o", str(out), "--device", "cpu", "--force"]
                )
                out.unlink()
                row = {"size": f"{width}x{height}", "frames": frames, "speed": speed,
                       "encode_mib": round(enc[0]), "encode_s": round(enc[1], 1),
                       "decode_mib": round(dec[0]), "decode_s": round(dec[1], 1)}  # fmt: skip
                rows.append(row)
                flag = "" if height > 1080 or max(enc[0], dec[0]) < BUDGET_MIB else " [OVER]"
                print(
                    f"{width}x{height} x{frames} --speed {speed}: encode {enc[0]:.0f} MiB "
                    f"({enc[1]:.1f} s), decode {dec[0]:.0f} MiB ({dec[1]:.1f} s){flag}",
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()

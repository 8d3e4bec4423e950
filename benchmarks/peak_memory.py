"""Peak memory (max RSS) of `vcodec encode` and `vcodec decode` on a generated 1080p clip.

    python benchmarks/peak_memory.py [--frames 64] [--qp 32] [--workdir /tmp/vcodec_mem]

Builds the sample scene at 1920x1080 (written once as lossless mp4, in a child process so the
parent stays small: a forked child's max RSS starts from its parent's), then runs the CLI in
child processes and reads each one's max RSS from getrusage.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from vcodec.eval.sample import make_sample
from vcodec.io import open_writer


def child_peak_mib(args: list[str]) -> tuple[float, float]:
    """Run one CLI call in a fresh process; return its (max RSS MiB, seconds)."""
    start = time.perf_counter()
    child = subprocess.Popen(
        [sys.executable, "-m", "vcodec.cli.main", *args], stdout=subprocess.DEVNULL
    )
    _, status, usage = os.wait4(child.pid, 0)
    if status:
        raise SystemExit(f"vcodec {args[0]} failed")
    return usage.ru_maxrss / 1024, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=64)
    ap.add_argument("--qp", type=int, default=32)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/vcodec_mem"))
    ap.add_argument("--make-clip", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.make_clip:
        info, gops = make_sample(1920, 1080, args.frames)
        with open_writer(args.make_clip, info, lossless=True) as writer:
            for gop in gops:
                writer.write(gop)
        return
    args.workdir.mkdir(parents=True, exist_ok=True)
    clip = args.workdir / "sample_1080p.mp4"
    if not clip.exists():
        subprocess.run(
            [sys.executable, __file__, "--make-clip", str(clip), "--frames", str(args.frames)],
            check=True,
        )
    vcx, out = args.workdir / "a.vcx", args.workdir / "b.y4m"
    mib, sec = child_peak_mib(
        ["encode", str(clip), "-o", str(vcx), "--qp", str(args.qp), "--device", "cpu", "--force"]
    )
    print(f"encode 1920x1080 x{args.frames} qp {args.qp}: peak RSS {mib:.0f} MiB, {sec:.1f} s")
    mib, sec = child_peak_mib(["decode", str(vcx), "-o", str(out), "--device", "cpu", "--force"])
    print(f"decode 1920x1080 x{args.frames}: peak RSS {mib:.0f} MiB, {sec:.1f} s")


if __name__ == "__main__":
    main()

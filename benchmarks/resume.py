"""Resume after a kill: an encode SIGKILLed once half its windows are kept, then the same command
with --resume; its time against an uninterrupted run's, and whether the bytes are the same.

    python benchmarks/resume.py ../shared/data/clips/fixedcam_road_topdown_640x360_480f.mp4 \\
        --segment-seconds 4
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vcodec.pipeline.resume import store_path


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip")
    parser.add_argument("--segment-seconds", default="4")
    args = parser.parse_args()
    out = Path(tempfile.mkdtemp(prefix="vcodec-resume-"))
    base = [sys.executable, "-m", "vcodec.cli.main", "encode", args.clip, "--jobs", "1"]
    base += ["--threads", "1", "--segment-seconds", args.segment_seconds]
    whole = out / "whole.vcx"
    uninterrupted = timed([*base, "-o", str(whole)])
    target = out / "killed.vcx"
    manifest = store_path(target) / "manifest.json"
    windows = len(json.loads(subprocess.run(
        [sys.executable, "-m", "vcodec.cli.main", "info", str(whole), "--json"],
        check=True, capture_output=True, text=True).stdout)["segments"])  # fmt: skip
    process = subprocess.Popen([*base, "-o", str(target)], stderr=subprocess.DEVNULL)
    start = time.perf_counter()
    kept = 0
    while process.poll() is None and kept < windows // 2:
        try:
            kept = len(json.loads(manifest.read_text())["windows"])
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    killed_after = time.perf_counter() - start
    rerun = timed([*base, "-o", str(target), "--resume"])
    same = target.read_bytes() == whole.read_bytes()
    print(json.dumps({
        "clip": args.clip, "segments": windows, "kept_at_kill": kept,
        "uninterrupted_s": round(uninterrupted, 2), "killed_after_s": round(killed_after, 2),
        "resumed_s": round(rerun, 2), "resumed_share": round(rerun / uninterrupted, 2),
        "identical": same,
    }, indent=1))  # fmt: skip
    shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()

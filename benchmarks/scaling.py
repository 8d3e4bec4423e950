"""Scale-out on this machine: one worker pinned to one core against two workers on two cores
(encoder threads 1 each), and the same through a two-node local Ray cluster; the outputs must be
byte-identical. Prints one JSON line per run and the speed-ups.

    python benchmarks/scaling.py \
        ../shared/data/clips/fixedcam_overhead_terrace_mono_1280x800_627f.mp4 --frames 600
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

REPEATS = 3  # each run is timed this many times, the fastest kept: the machine is shared


def run(command: list[str], env: dict[str, str] | None = None) -> float:
    """The fastest of REPEATS runs of the command, in seconds (it must succeed)."""
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        subprocess.run([*command, "--force"], check=True, env=env, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return min(times)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip")
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--qp", type=int, default=32)
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--segment-seconds", default="5", help="segments to share out")
    args = parser.parse_args()
    vcodec = shutil.which("vcodec") or "vcodec"
    out = Path(tempfile.mkdtemp(prefix="vcodec-scaling-"))
    common = [args.clip, "--frames", str(args.frames), "--qp", str(args.qp), "--threads", "1"]
    common += ["--segment-seconds", args.segment_seconds]
    runs = {
        "1 worker, core 0": ["taskset", "-c", "0", vcodec, "encode", *common, "--jobs", "1"],
        "2 workers, cores 0-1": ["taskset", "-c", "0,1", vcodec, "encode", *common, "--jobs", "2"],
    }
    results = {}
    for name, command in runs.items():
        target = out / f"{len(results)}.vcx"
        seconds = run([*command, "-o", str(target)])
        results[name] = {"seconds": round(seconds, 2), "fps": round(args.frames / seconds, 2)}
        results[name]["sha256"] = digest(target)
        print(json.dumps({name: results[name]}), flush=True)
    if not args.no_ray:
        results["ray, 2 nodes of 1 CPU"] = ray_run(vcodec, common, args.frames, out)
        print(json.dumps({"ray": results["ray, 2 nodes of 1 CPU"]}), flush=True)
    one = results["1 worker, core 0"]["seconds"]
    for result in results.values():
        result["speedup"] = round(one / result["seconds"], 2)
    identical = len({r["sha256"] for r in results.values()}) == 1
    print(json.dumps({"clip": args.clip, "frames": args.frames, "identical": identical,
                      "runs": results}, indent=1))  # fmt: skip
    shutil.rmtree(out, ignore_errors=True)


def ray_run(vcodec: str, common: list[str], frames: int, out: Path) -> dict:
    """The encode on a two-node Ray cluster on this machine, one CPU a node (Ray's own
    cluster_utils: a head node and a second node, each its own raylet, as `ray start --head
    --num-cpus 1` and `ray start --address ... --num-cpus 1` make)."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        target = out / "ray.vcx"
        command = [vcodec, "encode", *common, "--cluster", cluster.address, "-o", str(target)]
        seconds = run(command)
        return {"seconds": round(seconds, 2), "fps": round(frames / seconds, 2),
                "sha256": digest(target), "nodes": len(cluster.list_all_nodes())}  # fmt: skip
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    main()

"""Where the benchmark scripts find the real clips (../shared/data/clips beside the checkout),
and the command line most of them share: clips, --frames, --qps."""

import argparse
from pathlib import Path

SHARED_CLIPS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "clips"


def clip_parser(doc: str, frames: int, qps: str) -> argparse.ArgumentParser:
    """A parser described by ``doc``'s first line, taking clips (none: the script's own shared
    clips, ``clip_paths``), --frames (default ``frames``) and --qps (comma-separated, default
    ``qps``; parsed into a list of ints)."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("clips", nargs="*", type=Path)
    ap.add_argument("--frames", type=int, default=frames)
    ap.add_argument("--qps", default=qps, type=lambda text: [int(q) for q in text.split(",")])
    return ap


def clip_paths(args: argparse.Namespace, names) -> list[Path]:
    """The clips asked for, else the shared clips ``names``."""
    return args.clips or [SHARED_CLIPS / name for name in names]

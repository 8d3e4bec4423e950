"""Where the benchmark scripts find the real clips: ../shared/data/clips beside the checkout."""

from pathlib import Path

SHARED_CLIPS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "clips"

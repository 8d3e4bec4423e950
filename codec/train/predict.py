"""`vcodec train predict`: the frame-prediction network of temporal scaling (seed 001).

It learns from the post-processing network's examples (`train post`'s cache): three
consecutive frames of the decoded base layer and the middle original. The input is the decoded
frames t - 1 and t + 1 around their rounded mean, as the decoder builds it for a dropped frame;
the target is the original frame t.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from vcodec.models.postprocess import PostNet
from vcodec.train.data import CPU
from vcodec.train.post import PostExamples, PostTrainConfig, train_post


def dropped_window(planes: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] frames t - 1, t, t + 1 -> t - 1, the rounded mean of its neighbours, t + 1."""
    out = planes.clone()
    out[:, 1] = torch.div(planes[:, 0] + planes[:, 2] + 1, 2, rounding_mode="floor")
    return out


def train_predict(
    examples: PostExamples,
    config: PostTrainConfig | None = None,
    *,
    device: torch.device = CPU,
    progress: Callable[[int, float], None] | None = None,
) -> PostNet:
    """Train a fresh PostNet to turn dropped_window(frames) into frame t (PSNR-YUV-weighted
    MSE); progress gets the step and the batch's gain over the plain mean (levels^2)."""
    return train_post(
        examples, config or PostTrainConfig(), device=device, progress=progress,
        window=dropped_window,
    )  # fmt: skip

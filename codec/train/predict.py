"""`vcodec train predict`: the frame-prediction network of temporal scaling (seed 001).

It learns from the post-processing network's examples (`train post`'s cache): three
consecutive frames of the decoded base layer and the middle original. The input is the decoded
frames t - 1 and t + 1 around their rounded mean, as the decoder builds it for a dropped frame;
the target is the original frame t.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from vcodec.models.postprocess import PostNet

from .data import CPU
from .post import PostExamples, _batch, weighted_mse


@dataclass(frozen=True)
class PredictTrainConfig:
    steps: int = 20000
    batch: int = 16
    lr: float = 1e-3
    seed: int = 0


def dropped_window(planes: torch.Tensor) -> torch.Tensor:
    """[B, 3, H, W] frames t - 1, t, t + 1 -> t - 1, the rounded mean of its neighbours, t + 1."""
    out = planes.clone()
    out[:, 1] = torch.div(planes[:, 0] + planes[:, 2] + 1, 2, rounding_mode="floor")
    return out


def train_predict(
    examples: PostExamples,
    config: PredictTrainConfig = PredictTrainConfig(),
    *,
    device: torch.device = CPU,
    progress: Callable[[int, float], None] | None = None,
) -> PostNet:
    """Train to minimise PSNR-YUV-weighted MSE on frame t; progress gets the step and the
    batch's gain in MSE over the plain mean of the neighbours (levels^2)."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    net = PostNet().to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=config.steps)
    for step in range(config.steps):
        py, pu, pv, xy, xu, xv, cond = _batch(
            examples, rng.integers(0, len(examples), config.batch), rng, device
        )
        py, pu, pv = (dropped_window(p) for p in (py, pu, pv))
        loss = weighted_mse(net(py, pu, pv, cond), (xy, xu, xv))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        if progress:
            with torch.no_grad():
                before = weighted_mse((py[:, 1], pu[:, 1], pv[:, 1]), (xy, xu, xv))
            progress(step + 1, (before - loss).item())
    return net.eval()

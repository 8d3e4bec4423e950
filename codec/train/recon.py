"""`vcodec train recon`: the reconstruction network, on random or candidate masks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from vcodec.models.reconstruction import RESIDUAL_UNIT, ReconstructionNet
from vcodec.stages.mask_samples import quantise, sample_step
from vcodec.stages.masks import PATCH_H, PATCH_T, PATCH_W, expand, recon_input
from vcodec.train.data import CPU, Examples

LOG_FLOOR = 1e-4  # added to each MSE (residual units) before the log: 0.4 8-bit levels^2


@dataclass(frozen=True)
class ReconTrainConfig:
    steps: int = 1500
    batch: int = 8
    lr: float = 2e-3
    seed: int = 0
    empty_share: float = 0.15  # random masks: share of empty patches
    min_density: float = 1 / 128  # random masks: densities log-uniform from this to 1


def random_masks(
    n: int, grid: tuple[int, int], config: ReconTrainConfig, gen: torch.Generator
) -> torch.Tensor:
    """i.i.d. masks ``[n, 16, 8h, 8w]``, one density per patch (log-uniform), some empty."""
    h, w = grid
    logd = torch.rand(n, 1, h, 1, w, 1, generator=gen) * np.log(config.min_density)
    density = logd.exp() * (torch.rand(n, 1, h, 1, w, 1, generator=gen) > config.empty_share)
    u = torch.rand(n, PATCH_T, h, PATCH_H, w, PATCH_W, generator=gen)
    return (u < density).float().reshape(n, PATCH_T, h * PATCH_H, w * PATCH_W)


def batch_inputs(
    ex: Examples, mask: torch.Tensor, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(network input, prediction, original) for a batch of examples under ``mask``."""
    x = torch.from_numpy(ex.x).float()
    p = torch.from_numpy(ex.p).float()
    rows = []
    for i in range(len(ex)):
        step = sample_step(int(ex.qp[i]), bool(ex.pure[i]))
        levels = torch.from_numpy(quantise((x[i] - p[i]).numpy(), step)).float()
        rows.append(
            recon_input(
                (levels * step)[None],
                mask[i : i + 1],
                p[i : i + 1],
                bool(ex.pure[i]),
                bool(ex.chroma[i]),
                step,
            )
        )
    return torch.cat(rows).to(device), p.to(device), x.to(device)


def train_recon(
    examples: Examples,
    config: ReconTrainConfig = ReconTrainConfig(),
    *,
    candidates: torch.Tensor | None = None,
    init: ReconstructionNet | None = None,
    device: torch.device = CPU,
    progress: Callable[[int, float], None] | None = None,
) -> ReconstructionNet:
    """Train (or fine-tune ``init``) on ``examples``; masks random, or drawn from ``candidates``.

    Loss: the mean over examples of log(MSE), so that the large errors of pure-mode crops do not
    drown the small ones of hybrid crops (progress reports the MSE in 8-bit levels squared).
    """
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    net = (init or ReconstructionNet()).to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=config.steps)
    size = examples.x.shape[-1]
    grid = (size // PATCH_H, size // PATCH_W)
    for step in range(config.steps):
        batch = examples.take(rng.integers(0, len(examples), config.batch))
        if candidates is None:
            mask = random_masks(config.batch, grid, config, gen)
        else:
            index = torch.randint(0, len(candidates), (config.batch, *grid), generator=gen)
            mask = expand(candidates.cpu(), index, PATCH_T)
        inp, p, x = batch_inputs(batch, mask, device)
        target = (x - p) / RESIDUAL_UNIT
        mse = (net(inp) - target).square().mean(dim=(1, 2, 3))  # per example, residual units
        loss = (mse + LOG_FLOOR).log().mean()  # mean log-MSE: every example's PSNR counts
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        if progress:
            progress(step + 1, mse.mean().item() * RESIDUAL_UNIT**2)  # in 8-bit levels^2
    return net.eval()

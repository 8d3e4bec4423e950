"""`vcodec train recon`: the reconstruction network, on random or candidate masks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vcodec.errors import InputError
from vcodec.models.reconstruction import RESIDUAL_UNIT, ReconstructionNet, ReconstructionNetV2
from vcodec.stages.mask_samples import quantise, sample_step
from vcodec.stages.masks import PATCH_H, PATCH_T, PATCH_W, expand, recon_input
from vcodec.train.common import Checkpoint, load_weights
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
    random_share: float = 0.0  # with candidates: share of examples under random masks instead
    # with candidates: share of the others whose patches all take one candidate (a selector's
    # choices are alike over a smooth area; a candidate with empty frames then empties the
    # whole frame, which independent draws never do)
    same_share: float = 0.0


def load_recon(path) -> nn.Module:
    """A reconstruction network saved by `vcodec train recon`, recon-v1's kind or recon-v2's
    (told apart by the tail: v2's also gives the blend weights of its fills)."""
    state = load_weights(path)
    tail = state.get("tail.weight") if isinstance(state, dict) else None
    if tail is None:
        raise InputError(f"{path}: not the weights of a reconstruction network")
    v1 = tail.shape == ReconstructionNet().tail.weight.shape
    return load_weights(path, ReconstructionNet if v1 else ReconstructionNetV2)


def random_masks(n: int, grid: tuple[int, int], config: ReconTrainConfig) -> torch.Tensor:
    """i.i.d. masks ``[n, 16, 8h, 8w]``, one density per patch (log-uniform), some empty."""
    h, w = grid
    logd = torch.rand(n, 1, h, 1, w, 1) * np.log(config.min_density)
    density = logd.exp() * (torch.rand(n, 1, h, 1, w, 1) > config.empty_share)
    u = torch.rand(n, PATCH_T, h, PATCH_H, w, PATCH_W)
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
    init: nn.Module | None = None,
    device: torch.device = CPU,
    progress: Callable[[int, float], None] | None = None,
    checkpoint: Checkpoint | None = None,
) -> nn.Module:
    """Train (or fine-tune ``init``, a ReconstructionNet or ReconstructionNetV2; a fresh
    ReconstructionNet without it) on ``examples``; masks random, or drawn from ``candidates``
    (each example under a random mask instead with ``config.random_share``, and with
    ``config.same_share`` one candidate on all its patches). ``checkpoint``:
    resume from it and save to it.

    Loss: the mean over examples of log(MSE), so that the large errors of pure-mode crops do not
    drown the small ones of hybrid crops (progress reports the MSE in 8-bit levels squared).
    """
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    net = (init or ReconstructionNet()).to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=config.steps)
    size = examples.x.shape[-1]
    grid = (size // PATCH_H, size // PATCH_W)
    checkpoint = checkpoint or Checkpoint(None, {})
    for step in range(checkpoint.resume(net, opt, sched, rng), config.steps):
        batch = examples.take(rng.integers(0, len(examples), config.batch))
        mask = None
        if candidates is None or config.random_share > 0:
            mask = random_masks(config.batch, grid, config)
        if candidates is not None:
            index = torch.randint(0, len(candidates), (config.batch, *grid))
            same = torch.rand(config.batch) < config.same_share
            index = torch.where(same[:, None, None], index[:, :1, :1], index)
            drawn = expand(candidates.cpu(), index, PATCH_T)
            keep = torch.rand(config.batch) < config.random_share
            mask = drawn if mask is None else torch.where(keep[:, None, None, None], mask, drawn)
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
        checkpoint.save(step + 1, net, opt, sched, rng)
    checkpoint.done()
    return net.eval()

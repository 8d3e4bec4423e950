"""`vcodec train selector`: RD-search labels with the reconstruction network, then the selector.

Labels: for every crop, the RD cost D + lambda(qp) * R of every candidate on every patch
(MaskCodec.rd_costs, the same search as `--mask-search exhaustive`). Loss: the expected regret
of the selector's softmax over candidates (cost above the best, in units of lambda * 64 bits)
plus a small cross-entropy towards the best candidate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vcodec.entropy import rd_lambda
from vcodec.models.reconstruction import ReconstructionNet
from vcodec.models.selector import MaskSelector
from vcodec.stages.mask_samples import sample_step
from vcodec.stages.masks import MaskCodec, PlaneGroup, selector_input
from vcodec.train.data import CPU, Examples


@dataclass(frozen=True)
class SelectorTrainConfig:
    steps: int = 2000
    batch: int = 16
    lr: float = 2e-3
    label_crops: int = 768  # crops labelled by the exhaustive search
    label_batch: int = 16
    regret_unit_bits: float = 64.0
    ce_weight: float = 0.1
    seed: int = 0


def label_subset(examples: Examples, config: SelectorTrainConfig) -> Examples:
    rng = np.random.default_rng(config.seed)
    n = min(len(examples), config.label_crops)
    return examples.take(np.sort(rng.choice(len(examples), n, replace=False)))


def rd_labels(
    examples: Examples,
    recon: ReconstructionNet,
    candidates: torch.Tensor,
    config: SelectorTrainConfig = SelectorTrainConfig(),
    *,
    device: torch.device = CPU,
    progress: Callable[[int, float], None] | None = None,
) -> tuple[Examples, np.ndarray]:
    """(the labelled crops, their costs ``[N, K, h, w]``) from an exhaustive RD search."""
    ex = label_subset(examples, config)
    keys = np.stack([ex.qp, ex.pure, ex.chroma], 1)
    costs = np.zeros((len(ex), len(candidates), ex.x.shape[2] // 8, ex.x.shape[3] // 8), "f4")
    done = 0
    for key in np.unique(keys, axis=0):
        rows = np.flatnonzero((keys == key).all(1))
        qp, pure, chroma = int(key[0]), bool(key[1]), bool(key[2])
        codec = MaskCodec(
            qp, pure, device, "exhaustive", candidates=candidates, recon=recon, dtype=torch.float32
        )
        for start in range(0, len(rows), config.label_batch):
            part = rows[start : start + config.label_batch]
            x = torch.from_numpy(ex.x[part]).to(device, torch.float32)
            p = torch.from_numpy(ex.p[part]).to(device, torch.float32)
            group = PlaneGroup(x, p, torch.ones(x.shape[-2:], device=device), chroma)
            costs[part] = codec.rd_costs(group).cpu().numpy()
            done += len(part)
            if progress:
                progress(done, float("nan"))
    return ex, costs


def train_selector(
    labelled: tuple[Examples, np.ndarray],
    candidates: int,
    config: SelectorTrainConfig = SelectorTrainConfig(),
    device: torch.device = CPU,
    *,
    progress: Callable[[int, float], None] | None = None,
) -> MaskSelector:
    ex, costs = labelled
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    inputs = torch.cat([_inputs(ex, i) for i in range(len(ex))])
    lam = torch.tensor([rd_lambda(int(q)) for q in ex.qp], dtype=torch.float32)
    regret = torch.from_numpy(costs) - torch.from_numpy(costs).amin(1, keepdim=True)
    regret = regret / (lam * config.regret_unit_bits)[:, None, None, None]
    best = torch.from_numpy(costs).argmin(1)
    net = MaskSelector(candidates).to(device).train()
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=config.steps)
    for step in range(config.steps):
        idx = torch.from_numpy(rng.integers(0, len(ex), config.batch))
        flip = bool(rng.integers(2))
        x, r, b = inputs[idx], regret[idx], best[idx]
        if flip:  # mirror left-right: the costs of a mirrored crop are the mirrored costs
            x, r, b = x.flip(-1), r.flip(-1), b.flip(-1)
        logits = net(x.to(device))
        prob = logits.softmax(1)
        loss = (prob * r.to(device)).sum(1).mean()
        loss = loss + config.ce_weight * F.cross_entropy(logits, b.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if progress:
            progress(step + 1, loss.item())
    return net.eval()


def _inputs(ex: Examples, i: int) -> torch.Tensor:
    """The selector input of crop ``i`` ``[1, 6, T, S, S]``, mirrored flips aside."""
    qp, pure = int(ex.qp[i]), bool(ex.pure[i])
    x = torch.from_numpy(ex.x[i : i + 1]).float()
    p = torch.from_numpy(ex.p[i : i + 1]).float()
    return selector_input(x, p, pure, bool(ex.chroma[i]), sample_step(qp, pure), rd_lambda(qp))

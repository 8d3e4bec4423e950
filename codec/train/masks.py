"""`vcodec train masks`: per-patch mask optimisation with the network in the loop, then clustering.

Each crop gets its own relaxed mask (a logit per sample); the loss is the reconstruction's mean
squared error plus beta * density, with beta = lambda(qp) * an assumed cost per sample, spread
over a factor 64 so the optimised masks span densities. Straight-through Bernoulli sampling
keeps the forward pass binary, as at coding time. The binarised per-patch masks are clustered
with k-means (Hamming distance), band by band of density, into K - 2 centroids; the empty and
the full mask complete the K candidates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from vcodec.entropy import rd_lambda
from vcodec.models.reconstruction import RESIDUAL_UNIT, ReconstructionNet
from vcodec.models.registry import MASK_CANDIDATES
from vcodec.stages.masks import PATCH_H, PATCH_T, PATCH_W
from vcodec.train.data import CPU, Examples
from vcodec.train.recon import batch_inputs

DENSITY_BANDS = (0.0, 1 / 32, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 1.0)  # clusters are shared among these


@dataclass(frozen=True)
class MaskTrainConfig:
    steps: int = 150
    crops: int = 48  # crops optimised together
    lr: float = 0.1
    bits_per_sample: float = 5.0  # assumed cost of one sample, for beta
    beta_spread: float = 3.0  # beta is scaled by 2^u, u uniform in [-spread, spread]
    candidates: int = MASK_CANDIDATES
    kmeans_iters: int = 60
    seed: int = 0


def optimise_masks(
    examples: Examples,
    net: ReconstructionNet,
    config: MaskTrainConfig = MaskTrainConfig(),
    *,
    device: torch.device = CPU,
    progress: Callable[[int, float], None] | None = None,
) -> torch.Tensor:
    """Optimised binary per-patch masks ``[M, 16, 8, 8]`` (bool) for ``config.crops`` crops."""
    rng = np.random.default_rng(config.seed)
    n = min(config.crops, len(examples))
    batch = examples.take(rng.choice(len(examples), n, replace=False))
    net = net.to(device).eval().requires_grad_(False)
    lam = np.array([rd_lambda(int(q)) for q in batch.qp])
    spread = 2.0 ** rng.uniform(-config.beta_spread, config.beta_spread, len(lam))
    beta = torch.tensor(lam * config.bits_per_sample * spread, dtype=torch.float32, device=device)
    shape = batch.x.shape  # [N, T, S, S]
    logits = torch.full(shape, -2.0, device=device, requires_grad=True)  # density ~ 0.12
    opt = torch.optim.Adam([logits], lr=config.lr)
    ones = torch.ones(shape)
    full_inputs, p, x = batch_inputs(batch, ones, device)  # samples everywhere, masked below
    for step in range(config.steps):
        prob = torch.sigmoid(logits)
        hard = torch.bernoulli(prob.detach())
        mask = hard + prob - prob.detach()  # straight-through
        inp = full_inputs.clone()
        inp[:, 0] = full_inputs[:, 0] * mask
        inp[:, 1] = mask
        out = p + net(inp) * RESIDUAL_UNIT
        mse = (out - x).square().mean(dim=(1, 2, 3))
        loss = (mse + beta * prob.mean(dim=(1, 2, 3))).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if progress:
            progress(step + 1, mse.mean().item())
    binary = torch.sigmoid(logits.detach()).cpu() > 0.5
    n, t, s, _ = binary.shape
    patches = binary.reshape(n, t, s // PATCH_H, PATCH_H, s // PATCH_W, PATCH_W)
    return patches.permute(0, 2, 4, 1, 3, 5).reshape(-1, PATCH_T, PATCH_H, PATCH_W)


def cluster_masks(masks: torch.Tensor, config: MaskTrainConfig = MaskTrainConfig()) -> torch.Tensor:
    """K candidates ``[K, 16, 8, 8]`` (bool) sorted by density: empty first, full last.

    The K - 2 clusters are shared equally among the density bands of DENSITY_BANDS, and
    k-means runs inside each band, so the candidates span sparse to dense whatever the
    optimiser preferred (plain k-means in Hamming space crowds the dense end). A band with too
    few optimised masks is topped up with i.i.d. masks of its mid density (logged).
    """
    flat = masks.flatten(1).float()
    density = flat.mean(1)
    gen = torch.Generator().manual_seed(config.seed)
    bands = len(DENSITY_BANDS) - 1
    per_band = [(config.candidates - 2) // bands] * bands
    for i in range((config.candidates - 2) % bands):
        per_band[i] += 1
    out = []
    bounds = zip(DENSITY_BANDS[:-1], DENSITY_BANDS[1:], strict=True)
    for (lo, hi), k in zip(bounds, per_band, strict=True):
        members = flat[(density > lo) & (density <= hi) & (density < 1)]
        if len(members) < 4 * k:
            mid = (max(lo, 1 / 1024) * hi) ** 0.5
            extra = (torch.rand(4 * k, flat.shape[1], generator=gen) < mid).float()
            members = torch.cat([members, extra])
        for c, ones in _kmeans(members, k, config.kmeans_iters, gen):
            mask = torch.zeros_like(c, dtype=torch.bool)
            mask[torch.topk(c, max(1, int(round(float(ones))))).indices] = True
            out.append(mask)
    cands = torch.stack(out)
    cands = cands[torch.argsort(cands.float().mean(1), stable=True)]
    size = PATCH_T * PATCH_H * PATCH_W
    empty, full = torch.zeros(1, size, dtype=torch.bool), torch.ones(1, size, dtype=torch.bool)
    return torch.cat([empty, cands, full]).reshape(-1, PATCH_T, PATCH_H, PATCH_W)


def _kmeans(x: torch.Tensor, k: int, iters: int, gen: torch.Generator):
    """k-means++ then Lloyd; yields (centroid, mean number of ones of its members)."""
    centres = x[torch.randint(len(x), (1,), generator=gen)]
    for _ in range(k - 1):
        d = torch.cdist(x, centres).min(1).values.square()
        centres = torch.cat([centres, x[torch.multinomial(d + 1e-9, 1, generator=gen)]])
    for _ in range(iters):
        assign = torch.cdist(x, centres).argmin(1)
        for j in range(k):
            members = x[assign == j]
            if len(members):
                centres[j] = members.mean(0)
    assign = torch.cdist(x, centres).argmin(1)
    for j in range(k):
        members = x[assign == j]
        ones = members.sum(1).mean() if len(members) else centres[j].sum()
        yield centres[j], ones

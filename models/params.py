"""The parameter module's network (seed 004): cheap GOP features -> a score per scale s."""

from __future__ import annotations

import torch
from torch import nn

FEATURES = 5  # see codec/params.py: gop_features


class ParamNet(nn.Module):
    """``[B, FEATURES]`` -> ``[B, choices]`` logits; the encoder takes the argmax."""

    def __init__(self, choices: int = 2, hidden: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(FEATURES, hidden), nn.LeakyReLU(0.1), nn.Linear(hidden, choices)
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net(features)

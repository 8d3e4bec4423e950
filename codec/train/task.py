"""Task-driven training (seed 003): a differentiable detector-feature loss for the
post-processing network.

NanoDet-m's backbone and FPN are run in torch straight from its ONNX file (the same weights the
bench scores mAP with): a small interpreter of the graph's operators up to the FPN's three
outputs (strides 8, 16, 32), generalised over batch and input size. The loss compares those
features on the network's output with those on the original frame. The codec before the
network is the real base layer (the examples are decoded base-layer crops), so no codec proxy
is needed for it: gradients only have to pass the detector, which is frozen.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from vcodec.errors import InputError
from vcodec.models.detectors import NANODET_MEAN, NANODET_STD

# the operators of nanodet-m_416.onnx's graph, the only ones this interpreter runs
_OPS = {"Conv", "LeakyRelu", "MaxPool", "Concat", "Reshape", "Transpose", "Split", "Resize", "Add",
        "Sigmoid"}  # fmt: skip


class NanoDetFeatures(nn.Module):
    """NanoDet-m's FPN features [B, 96, H/s, W/s] for s = 8, 16, 32 of a BGR batch [B, 3, H, W]
    (H, W multiples of 32). The FPN's outputs are the additions the heads' first convolutions
    read. Frozen: no parameter trains."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: no such detector weights (NanoDet .onnx)")
        try:
            import onnx
            from onnx import numpy_helper
        except ImportError:
            raise InputError(
                "task-driven training reads the detector with the onnx package: "
                'pip install "vcodec[train]"'
            ) from None
        try:
            graph = onnx.load(str(path)).graph
        except Exception:
            raise InputError(f"{path}: not an ONNX file") from None
        consts = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
        self.input = graph.input[0].name
        self.nodes, params = [], {}
        for node in graph.node:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            self.nodes.append((node.op_type, list(node.input), list(node.output), attrs))
        heads = [n for n in self.nodes if n[0] == "Conv" and n[1][0] in self._fpn_names()]
        if len(heads) != 3 or any(op not in _OPS for op, *_ in self.nodes):
            raise InputError(
                f"{path}: layers this port does not run (it runs nanodet-m_416.onnx's graph)"
            )
        self.outputs = [n[1][0] for n in heads]
        self.graph_outputs = [o.name for o in graph.output]
        self.shapes = {}  # Reshape targets, as the file has them (batch 1, its input size)
        for op, ins, _, _ in self.nodes:
            if op == "Conv":
                params.update((k, torch.from_numpy(consts[k].copy()).float()) for k in ins[1:])
            elif op == "Reshape":
                self.shapes[ins[1]] = [int(d) for d in consts[ins[1]]]
        self.weights = nn.ParameterDict(
            {_key(k): nn.Parameter(v, requires_grad=False) for k, v in params.items()}
        )
        self.register_buffer("mean", torch.tensor(NANODET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(NANODET_STD).view(1, 3, 1, 1))
        self.eval()

    def _fpn_names(self) -> set[str]:
        return {outs[0] for op, _, outs, _ in self.nodes if op == "Add"}

    def forward(self, bgr: torch.Tensor, whole: bool = False) -> list[torch.Tensor]:
        """``bgr``: 8-bit-scaled BGR [B, 3, H, W]; normalised here as NanoDet's input is.
        ``whole``: the graph's own outputs (heads included) instead of the FPN's."""
        env = {self.input: (bgr - self.mean) / self.std}
        wanted = set(self.graph_outputs if whole else self.outputs)
        for op, ins, outs, attrs in self.nodes:
            if wanted <= env.keys():
                break
            reads = ins if op in ("Concat", "Add") else ins[:1]  # the rest are constants
            if not all(i in env for i in reads):
                continue  # a head's node: not needed
            x = env[ins[0]]
            if op == "Conv":
                w = self.weights[_key(ins[1])]
                b = self.weights[_key(ins[2])] if len(ins) > 2 else None
                y = F.conv2d(x, w, b, attrs["strides"], attrs["pads"][:2], attrs["dilations"],
                             attrs["group"])  # fmt: skip
            elif op == "LeakyRelu":
                y = F.leaky_relu(x, attrs["alpha"])
            elif op == "MaxPool":
                y = F.max_pool2d(x, attrs["kernel_shape"], attrs["strides"], attrs["pads"][:2])
            elif op == "Concat":
                y = torch.cat([env[i] for i in ins], attrs["axis"])
            elif op == "Reshape":  # the file's shape with this batch and, where spatial, size
                shape = list(self.shapes[ins[1]])
                shape[0] = x.shape[0]
                if len(shape) >= 4:  # channel shuffle: [B, C, H, W] <-> [B, g, C/g, H, W]
                    shape[-2:] = x.shape[-2:]
                y = x.reshape(shape)
            elif op == "Transpose":
                y = x.permute(*attrs["perm"])
            elif op == "Split":
                env.update(zip(outs, torch.split(x, attrs["split"], attrs["axis"]), strict=True))
                continue
            elif op == "Resize":  # the FPN's top-down (x2) and bottom-up (x1/2) paths
                target = env[self._partner(outs[0])]
                y = F.interpolate(x, size=target.shape[-2:], mode="bilinear", align_corners=False)
            elif op == "Add":
                y = env[ins[0]] + env[ins[1]]
            else:  # Sigmoid: the class scores
                y = torch.sigmoid(x)
            env[outs[0]] = y
        return [env[o] for o in (self.graph_outputs if whole else self.outputs)]

    def _partner(self, name: str) -> str:
        """The other input of the Add that reads Resize output ``name`` (its target size: the
        file's Resize nodes carry no scales or sizes)."""
        for op, ins, _, _ in self.nodes:
            if op == "Add" and name in ins:
                return ins[1 - ins.index(name)]
        raise InputError(f"a Resize ({name}) that no FPN addition reads: not NanoDet-m")


def _key(name: str) -> str:
    return "w" + name.replace(".", "_")


def yuv_to_bgr(y: torch.Tensor, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """BT.601 limited-range 4:2:0 planes [B, H, W], [B, H/2, W/2] (8-bit levels) to BGR
    [B, 3, H, W], as the bench converts decoded frames before its detector (chroma doubled)."""
    u = u.repeat_interleave(2, -2).repeat_interleave(2, -1) - 128.0
    v = v.repeat_interleave(2, -2).repeat_interleave(2, -1) - 128.0
    luma = 1.164 * (y - 16.0)
    r = luma + 1.596 * v
    g = luma - 0.392 * u - 0.813 * v
    b = luma + 2.017 * u
    return torch.stack([b, g, r], 1).clamp(0, 255)


class FeatureLoss(nn.Module):
    """Mean over the three FPN levels of the squared feature difference, each normalised by
    the original's mean square over the batch there (so that the levels weigh alike)."""

    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.features = NanoDetFeatures(path)

    def forward(self, out: tuple, target: tuple) -> torch.Tensor:
        with torch.no_grad():
            ref = self.features(yuv_to_bgr(*target))
        got = self.features(yuv_to_bgr(*out))
        return sum(
            (g - r).square().mean() / r.square().mean().clamp_min(1e-6)
            for g, r in zip(got, ref, strict=True)
        ) / len(ref)

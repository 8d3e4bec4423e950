"""The post-processing stage (seed 004): the shipped PostNet over up-scaled base-layer GOPs."""

from __future__ import annotations

import copy

import numpy as np

from vcodec.errors import MalformedError
from vcodec.frames import Gop, yuv_mse
from vcodec.lazy import lazy_module, no_grad
from vcodec.models.registry import load
from vcodec.stages.stage import GopContext, Stage

torch = lazy_module("torch")
F = lazy_module("torch.nn.functional")
postprocess = lazy_module("vcodec.models.postprocess")
nn = lazy_module("torch.nn")

# How much of the post-processing network's correction a GOP takes (output = base + a (net -
# base)); the encoder picks the a with the least error, since the network trained on CPU
# helps some content and hurts other (models/README.md). Index 0 (a = 0) skips the network.
POST_STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
POST_MODEL = "post-v1"  # the default post-processing network (its registry name)
# every network the stage can run, the one a stream's header names: post-task-v1 is post-v1
# fine-tuned with a detector-feature loss (task-driven training, seed 003); post-v2 is the small
# LitePostNet (~440 multiply-adds a luma pixel against post-v1's ~5,200)
POST_MODELS = (POST_MODEL, "post-task-v1", "post-v2")
FRAMES_PER_PASS = 4  # frames through the network at once (bounded memory)
TILE_ROWS = 256  # luma rows per stripe (a multiple of 4)


class PostProcessor:
    """Cleans GOPs of the upscaled base layer with the shipped post-processing network.

    ``dtype`` float64 when the output feeds the mask codec's prediction (encoder and decoder
    must round alike on any device), float32 otherwise (5x faster on a CPU).
    """

    def __init__(
        self,
        device: torch.device,
        dtype: torch.dtype | None = None,
        net: torch.nn.Module | None = None,
        name: str = POST_MODEL,
    ) -> None:
        self.device, self.dtype = device, dtype or torch.float32
        shared = net if net is not None else load(name)
        self.net = copy.deepcopy(shared).to(device=device, dtype=self.dtype).eval()

    @no_grad
    def __call__(self, gop: Gop, base_qp: int, scale: int, frames: list[int] | None = None) -> Gop:
        """``gop``: the upscaled base layer cropped to the stream's size (any size). Returns
        every frame processed, or only ``frames`` (each still seeing its neighbours)."""
        h, w = gop.height, gop.width
        r = postprocess.LUMA_UNSHUFFLE
        hp, wp = -(-h // r) * r, -(-w // r) * r  # padded luma size; chroma is exactly half
        planes = [
            _padded(p, size, self.device, self.dtype)
            for p, size in zip(
                gop.planes(), ((hp, wp), (hp // 2, wp // 2), (hp // 2, wp // 2)), strict=True
            )
        ]
        cond = postprocess.condition(base_qp, scale).to(self.device, self.dtype)
        window = neighbour_window(gop.n_frames)
        if frames is not None:
            window = window[frames]
        out = [[], [], []]
        for first in range(0, len(window), FRAMES_PER_PASS):
            idx = window[first : first + FRAMES_PER_PASS]
            for plane, res in zip(out, self._stripes([p[idx] for p in planes], cond), strict=True):
                plane.append(res)
        y, u, v = (torch.cat(p) for p in out)
        ch, cw = (h + 1) // 2, (w + 1) // 2
        return Gop(
            _to_uint8(y[:, :h, :w]), _to_uint8(u[:, :ch, :cw]), _to_uint8(v[:, :ch, :cw]), gop.start
        )

    def _stripes(self, planes: list[torch.Tensor], cond: torch.Tensor) -> list[torch.Tensor]:
        """The network over ``planes`` ([B, 3, H, W], [B, 3, H/2, W/2] x2) in row stripes."""
        y, u, v = planes
        c = cond.expand(len(y), -1)
        height = y.shape[-2]
        halo = postprocess.RECEPTIVE_RADIUS  # luma rows of context each side: the whole reach
        parts = []
        for top in range(0, height, TILE_ROWS):
            bottom = min(height, top + TILE_ROWS)
            lo, hi = max(0, top - halo), min(height, bottom + halo)
            res = self.net(
                y[..., lo:hi, :], u[..., lo // 2 : hi // 2, :], v[..., lo // 2 : hi // 2, :], c
            )
            a, b = top - lo, bottom - lo
            parts.append((res[0][:, a:b], res[1][:, a // 2 : b // 2], res[2][:, a // 2 : b // 2]))
        return [torch.cat(p, dim=1) for p in zip(*parts, strict=True)]


def neighbour_window(n: int) -> torch.Tensor:
    """[n, NEIGHBOURS]: the frames the network sees for each frame of an ``n``-frame GOP (the
    previous, itself, the next; edge-replicated at the GOP's ends, as the decoder does)."""
    order = torch.arange(n)
    half = postprocess.NEIGHBOURS // 2
    return torch.stack([(order + k).clamp(0, n - 1) for k in range(-half, half + 1)], 1)


def post_model(models: dict[str, str]) -> str | None:
    """The post-processing network a stream header's ``models`` name, if any; MalformedError
    if more than one."""
    named = [m for m in models if m in POST_MODELS]
    if len(named) > 1:
        raise MalformedError(f"the stream names two post-processing networks: {named}")
    return named[0] if named else None


def _padded(plane: np.ndarray, size: tuple[int, int], device, dtype) -> torch.Tensor:
    """[T, h, w] uint8 -> [T, H, W] tensor, edge-replicated to ``size``."""
    x = torch.from_numpy(plane).to(device=device, dtype=dtype)
    dh, dw = size[0] - x.shape[1], size[1] - x.shape[2]
    if dh or dw:
        x = F.pad(x[:, None], (0, dw, 0, dh), mode="replicate")[:, 0]
    return x


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(x.round().clamp(0, 255).to(torch.uint8).cpu().numpy())


def blend(base: Gop, cleaned: Gop, strength: float) -> Gop:
    """``base + strength * (cleaned - base)``, rounded (half to even), per plane."""
    if strength == 0:
        return base
    if strength == 1:
        return cleaned
    planes = [
        np.round(b + strength * (c.astype(np.float64) - b)).astype(np.uint8)
        for b, c in zip(base.planes(), cleaned.planes(), strict=True)
    ]
    return Gop(*planes, base.start)


def best_strength(original: Gop, base: Gop, cleaned: Gop) -> int:
    """The index into POST_STRENGTHS whose blend is closest to ``original`` (yuv_mse)."""
    errors = [yuv_mse(original, blend(base, cleaned, a)) for a in POST_STRENGTHS]
    return int(np.argmin(errors))


class PostStage(Stage):
    """Seed 004's post-processing as a stage: the network cleans the up-scaled base layer and
    each GOP takes the share of its correction (POST_STRENGTHS) closest to the source. Its
    payload is the GOP's post strength symbol."""

    name, seed, side_info = "post", "004", True

    def __init__(self, device: torch.device, dtype: torch.dtype, model: str = POST_MODEL) -> None:
        super().__init__()
        self.model = model
        self.net = PostProcessor(device, dtype, name=model)

    def models(self) -> tuple[str, ...]:
        return (self.model,)

    def encode_gop(self, source: Gop, prediction: Gop, ctx: GopContext) -> tuple[Gop, dict]:
        with self.timed():
            cleaned = self.net(prediction, ctx.base_qp, ctx.scale)
            strength = best_strength(source, prediction, cleaned)
        self._used |= strength > 0
        return blend(prediction, cleaned, POST_STRENGTHS[strength]), {"post": strength}

    def decode_gop(self, prediction: Gop, payload, ctx: GopContext) -> Gop:
        """``payload``: the GOP's GopParams (its post strength index)."""
        if not payload.post:
            return prediction
        with self.timed():
            cleaned = self.net(prediction, ctx.base_qp, ctx.scale)
            return blend(prediction, cleaned, POST_STRENGTHS[payload.post])

"""The mask codec (seed 000): per-patch mask selection, sample coding and GOP reconstruction.

A plane of a GOP is cut into [16, 8, 8] patches (chroma planes get their own patch grid, so a
chroma patch covers 16x16 luma pixels). Each patch takes one of K candidate masks; the samples
of ``x - p`` under the mask (``p``: the upscaled base layer in hybrid mode, the previous GOP's
last decoded frame in pure mode) are quantised and range coded; the reconstruction network
turns samples + mask + ``p`` back into the whole GOP at once.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

from vcodec.bitstream.container import Samples
from vcodec.entropy import FrequencyTable, SymbolDecoder, SymbolEncoder, rd_lambda
from vcodec.errors import MalformedError
from vcodec.frames import Gop
from vcodec.lazy import lazy_module, no_grad
from vcodec.models import registry
from vcodec.stages.mask_samples import (
    DENSITY_CLASSES,
    GEOMETRIC_RATIOS,
    best_table,
    density_class,
    geometric_bits,
    geometric_counts,
    max_level,
    quantise,
    sample_step,
)
from vcodec.stages.stage import GopContext, Stage

torch = lazy_module("torch")
F = lazy_module("torch.nn.functional")
nn = lazy_module("torch.nn")
reconstruction = lazy_module("vcodec.models.reconstruction")

PATCH_T, PATCH_H, PATCH_W = 16, 8, 8  # a patch: 16 frames of 8x8 samples
# the networks run on tiles of at most TILE_ROWS x TILE_COLS (and each network's ``halo``: the
# context beyond its reach): a tile's float64 input and activations stay within ~1 GB at any
# frame size
TILE_ROWS, TILE_COLS = 128, 256
# net: the selection network; exhaustive: the RD search with the reconstruction network on
# every candidate; fills: the same search with the network's fixed fills (the best per patch)
# standing in for its output, then the network on each patch's SHORTLIST best
MASK_SEARCHES = ("net", "exhaustive", "fills")
SHORTLIST = 3  # fills: candidates per patch the search on the fills leaves to the network
TABLE_INDEX = FrequencyTable.uniform(len(GEOMETRIC_RATIOS))
FLAG = FrequencyTable.uniform(2)
CANDIDATES_MODEL = "masks-v1"  # the candidate masks, named in every mask-coded stream's header
RECON_MODELS = ("recon-v1", "recon-v2")  # reconstruction networks a stream may name
RECON_MODEL = "recon-v2"  # what new streams use (--recon-model)


# The reconstruction runs in float64: a CPU and a GPU then agree to ~1e-12 before rounding, so a
# stream decodes to the same frames on both (float32 can differ in the last bit and flip a
# rounded pixel, and pure mode predicts each GOP from the last). Costs ~1.5x on the CPU.
def recon_dtype() -> torch.dtype:
    """The reconstruction's dtype: float64 (see above)."""
    return torch.float64


def mask_models(recon_model: str = RECON_MODEL) -> tuple[str, str]:
    """The models a mask-coded stream names in its header: the candidates and ``recon_model``."""
    return CANDIDATES_MODEL, recon_model


def recon_model(models: dict[str, str] | list[str]) -> str | None:
    """The reconstruction network a header's ``models`` name for the mask codec, or None when
    they name no mask codec (no candidates, or not exactly one reconstruction network)."""
    recons = [name for name in models if name in RECON_MODELS]
    return recons[0] if CANDIDATES_MODEL in models and len(recons) == 1 else None


@dataclass(frozen=True)
class PlaneGroup:
    """Planes of one kind, padded to the patch grid: x, p ``[B, T, H, W]`` float in 8-bit levels.

    ``valid`` ``[H, W]`` is 1 inside the picture, 0 in the padding.
    """

    x: torch.Tensor | None  # the original (None at the decoder)
    p: torch.Tensor
    valid: torch.Tensor
    chroma: bool

    @property
    def grid(self) -> tuple[int, int]:
        return self.p.shape[-2] // PATCH_H, self.p.shape[-1] // PATCH_W


def candidate_masks(device: torch.device | str = "cpu") -> torch.Tensor:
    """The shipped candidates ``[K, 16, 8, 8]`` float 0/1; index 0 is the empty mask."""
    return registry.load("masks-v1").to(device=device, dtype=torch.float32)


def expand(candidates: torch.Tensor, index: torch.Tensor, frames: int) -> torch.Tensor:
    """Per-patch candidate indices ``[B, h, w]`` -> the full mask ``[B, T, 8h, 8w]``."""
    b, h, w = index.shape
    m = candidates[index][:, :, :, :frames]  # [B, h, w, T, 8, 8]
    return m.permute(0, 3, 1, 4, 2, 5).reshape(b, frames, h * PATCH_H, w * PATCH_W)


def recon_input(
    samples: torch.Tensor,
    mask: torch.Tensor,
    p: torch.Tensor,
    pure: bool,
    chroma: bool,
    step: float,
) -> torch.Tensor:
    """The reconstruction network's input ``[B, 6, T, H, W]`` (models/reconstruction.py)."""
    flags = torch.ones_like(p)
    return torch.stack(
        [
            samples * mask / reconstruction.RESIDUAL_UNIT,
            mask,
            (p - 128.0) / reconstruction.RESIDUAL_UNIT,
            flags * float(pure),
            flags * float(chroma),
            flags * (step / reconstruction.STEP_UNIT),
        ],
        dim=1,
    )


def selector_input(
    x: torch.Tensor, p: torch.Tensor, pure: bool, chroma: bool, step: float, lam: float
) -> torch.Tensor:
    """The selector's input ``[B, 6, T, H, W]`` (models/selector.py)."""
    flags = torch.ones_like(p)
    return torch.stack(
        [
            (x - p) / reconstruction.RESIDUAL_UNIT,
            (p - 128.0) / reconstruction.RESIDUAL_UNIT,
            flags * float(pure),
            flags * float(chroma),
            flags * (step / reconstruction.STEP_UNIT),
            flags * (float(np.log2(lam)) / 8.0),
        ],
        dim=1,
    )


def tiled(
    net: Callable[[torch.Tensor], torch.Tensor],
    inputs: Callable[[slice, slice], torch.Tensor],
    height: int,
    width: int,
    scale: int,
    halo: int,
    finish: Callable[[torch.Tensor, slice, slice], torch.Tensor] | None = None,
) -> torch.Tensor:
    """Run ``net`` on its input for a plane ``height`` x ``width`` in tiles of at most
    TILE_ROWS x TILE_COLS, each with ``halo`` pixels of context on every side (the network's
    ``halo``: more than its reach, so the tiles' outputs are the whole plane's);
    ``inputs(rows, cols)`` builds the input ``[B, C, T, rows, cols]`` of one
    tile, so the whole plane's input never exists at once and memory does not grow with the
    frame size. ``finish(out, rows, cols)`` turns a tile's output (its own rows and columns of
    the plane, at ``scale`` 1) into what is kept, so that only that is ever whole. The output
    is H / ``scale`` by W / ``scale``."""
    if finish is None:
        finish = lambda out, rows, cols: out  # noqa: E731
    if height <= TILE_ROWS and width <= TILE_COLS:
        whole = (slice(0, height), slice(0, width))
        return finish(net(inputs(*whole)), *whole)
    bands = []
    for top in range(0, height, TILE_ROWS):
        bottom = min(height, top + TILE_ROWS)
        lo, hi = max(0, top - halo), min(height, bottom + halo)
        parts = []
        for left in range(0, width, TILE_COLS):
            right = min(width, left + TILE_COLS)
            start, stop = max(0, left - halo), min(width, right + halo)
            out = net(inputs(slice(lo, hi), slice(start, stop)))
            rows = slice((top - lo) // scale, (bottom - lo) // scale)
            out = out[..., rows, (left - start) // scale : (right - start) // scale]
            parts.append(finish(out, slice(top, bottom), slice(left, right)))
        bands.append(torch.cat(parts, dim=-1))
    return torch.cat(bands, dim=-2)


class MaskCodec:
    """Codes and reconstructs GOPs with the shipped candidates and networks, on ``device``.

    ``search`` picks the encoder's mask selection; None makes a decoder (no selector loaded).
    """

    def __init__(
        self,
        qp: int,
        pure: bool,
        device: torch.device,
        search: str | None = "net",
        *,
        candidates: torch.Tensor | None = None,
        recon: torch.nn.Module | None = None,
        selector: torch.nn.Module | None = None,
        dtype: torch.dtype | None = None,
        recon_model: str = RECON_MODEL,
    ) -> None:
        """The shipped models (the reconstruction network ``recon_model``), unless given
        (training builds codecs from its own, and may run the reconstruction in float32: its
        labels need no cross-device rounding guarantee)."""
        if search is not None and search not in MASK_SEARCHES:
            raise ValueError(f"mask search must be one of {MASK_SEARCHES}, got {search!r}")
        self.qp, self.pure, self.device, self.search = qp, pure, device, search
        self.step = sample_step(qp, pure)
        self.limit = max_level(self.step)
        self.lam = rd_lambda(qp)
        if candidates is None:
            candidates = candidate_masks(device)
        self.candidates = candidates.to(device, torch.float32)
        self.density = self.candidates.flatten(1).mean(1).cpu().numpy()
        self.classes = density_class(self.density)
        self.dtype = dtype or recon_dtype()
        # copies: .to() changes a module in place, and registry.load's modules are shared
        self.recon_net = copy.deepcopy(recon or registry.load(recon_model)).to(device, self.dtype)
        if search == "net" and selector is None:
            selector = registry.load("selector-v1")
        self.selector = copy.deepcopy(selector).to(device) if selector is not None else None

    # -- the decoder side ------------------------------------------------------------------

    @no_grad
    def reconstruct(
        self, group: PlaneGroup, index: torch.Tensor, levels: torch.Tensor
    ) -> torch.Tensor:
        """x-hat ``[B, T, H, W]`` from indices ``[B, h, w]`` and levels ``[B, T, H, W]``: the
        decoded pixels (whole numbers 0..255, float32). Tile by tile, the network's residual
        (``self.dtype``) is added to the prediction, clamped and rounded (half to even), so
        the whole plane is never held in float64."""
        return self._run(self.recon_net, group, index, levels, self.dtype)

    def _run(
        self,
        net: Callable[[torch.Tensor], torch.Tensor],
        group: PlaneGroup,
        index: torch.Tensor,
        levels: torch.Tensor,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        """``net``'s residual (the reconstruction's, or its fills ``[B, F, T, H, W]``) on
        the network's input for ``index`` and ``levels`` in ``dtype``, as decoded pixels."""
        frames = group.p.shape[1]

        def inputs(rows: slice, cols: slice) -> torch.Tensor:
            patches = index[:, rows.start // PATCH_H : rows.stop // PATCH_H,
                            cols.start // PATCH_W : cols.stop // PATCH_W]  # fmt: skip
            mask = expand(self.candidates, patches, frames) * group.valid[rows, cols]
            at = (..., rows, cols)
            samples = levels[at] * self.step
            x = recon_input(samples, mask, group.p[at], self.pure, group.chroma, self.step)
            return x.to(dtype)

        def finish(residual: torch.Tensor, rows: slice, cols: slice) -> torch.Tensor:
            p = group.p[..., rows, cols]
            if residual.dim() == 5:  # fills: [B, F, T, H, W]
                p = p[:, None]
            out = p + residual * reconstruction.RESIDUAL_UNIT
            return out.clamp(0, 255).round().to(torch.float32)

        h, w = group.p.shape[-2:]
        return tiled(net, inputs, h, w, 1, self.recon_net.halo, finish)

    # -- the encoder side ------------------------------------------------------------------

    @no_grad
    def select(self, group: PlaneGroup) -> torch.Tensor:
        """Candidate index per patch ``[B, h, w]``: by the network, by exhaustive RD search,
        or (fills) by the RD search on the network's fills, which shortlists SHORTLIST
        candidates per patch for the network to settle."""
        if self.search == "exhaustive":
            return self.rd_costs(group).argmin(dim=1)
        if self.search == "fills":
            levels = quantise((group.x - group.p).cpu().numpy(), self.step)
            guessed = self.rd_costs(group, fills=True, levels=levels)
            shortlist = guessed.topk(SHORTLIST, dim=1, largest=False).indices  # [B, S, h, w]
            settled = torch.stack(
                [self._patch_costs(group, i, levels) for i in shortlist.unbind(1)], 1
            )
            return shortlist.gather(1, settled.argmin(1, keepdim=True))[:, 0]

        def inputs(rows: slice, cols: slice) -> torch.Tensor:
            x, p = group.x[..., rows, cols], group.p[..., rows, cols]
            return selector_input(x, p, self.pure, group.chroma, self.step, self.lam)

        h, w = group.p.shape[-2:]
        return tiled(self.selector, inputs, h, w, PATCH_H, self.selector.halo).argmax(dim=1)

    @no_grad
    def rd_costs(
        self, group: PlaneGroup, fills: bool = False, levels: np.ndarray | None = None
    ) -> torch.Tensor:
        """Per-patch RD cost ``[B, K, h, w]`` of every candidate used on the whole plane group
        (``_patch_costs``; ``fills``: with the network's fills standing in for its output;
        ``levels``: the group's quantised residual, when the caller has it)."""
        b = group.p.shape[0]
        h, w = group.grid
        if levels is None:
            levels = quantise((group.x - group.p).cpu().numpy(), self.step)
        return torch.stack(
            [
                self._patch_costs(
                    group, torch.full((b, h, w), k, device=self.device), levels, fills
                )
                for k in range(len(self.candidates))
            ],
            dim=1,
        )

    def _patch_costs(
        self, group: PlaneGroup, index: torch.Tensor, levels: np.ndarray, fills: bool = False
    ) -> torch.Tensor:
        """Per-patch RD cost ``[B, h, w]`` of the candidates ``index`` ``[B, h, w]``.

        D: squared error after reconstruction (``fills``: of the network's fill that errs
        least on the patch, which costs a fraction of the network); R: the samples' bits under
        the best geometric table for their masks (the mask index's own bits left out)."""
        mask = expand(self.candidates, index, group.p.shape[1]) * group.valid
        q = torch.from_numpy(levels).to(self.device) * mask
        if fills:
            # [B, F, T, H, W], in float32: the encoder's guess, not what the decoder makes
            out = self._run(self.recon_net.fills, group, index, q, torch.float32)
            err = ((out - group.x[:, None]).square() * group.valid).sum(2)
            dist = _patch_sums(err.flatten(0, 1)).unflatten(0, err.shape[:2]).amin(1)
        else:
            err = (self.reconstruct(group, index, q) - group.x).square() * group.valid
            dist = _patch_sums(err.sum(1))
        sel = mask.cpu().numpy() > 0
        table, _ = best_table(levels[sel], self.limit)
        sample_bits = np.where(sel, geometric_bits(self.limit)[table][levels + self.limit], 0.0)
        rate = torch.from_numpy(sample_bits).to(self.device, torch.float32)
        return dist + self.lam * _patch_sums(rate.sum(1))

    def encode_group(
        self, group: PlaneGroup, enc: SymbolEncoder, index: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Select (unless ``index`` gives each patch's candidate), quantise and code one plane
        group into ``enc``; returns x-hat."""
        if index is None:
            index = self.select(group)
        mask = self._sample_mask(group, index)
        levels = quantise((group.x - group.p).cpu().numpy(), self.step)
        levels *= mask  # only the masked samples are coded, and reconstructed from
        idx = index.cpu().numpy()
        enc.encode_adaptive(idx.ravel(), len(self.candidates))
        for where in self._contexts(idx, mask):
            table, _ = best_table(levels[where], self.limit)
            enc.encode(table, TABLE_INDEX)
            enc.encode_array(levels[where] + self.limit, self._table(table))
        return self.reconstruct(group, index, torch.from_numpy(levels).to(self.device))

    def _sample_mask(self, group: PlaneGroup, index: torch.Tensor) -> np.ndarray:
        """bool ``[B, T, H, W]``: where samples are coded (the patches' candidates, inside
        the picture)."""
        mask = expand(self.candidates > 0, index, group.p.shape[1]) & (group.valid > 0)
        return mask.cpu().numpy()

    def decode_group(self, group: PlaneGroup, dec: SymbolDecoder) -> torch.Tensor:
        b = group.p.shape[0]
        h, w = group.grid
        idx = dec.decode_adaptive(b * h * w, len(self.candidates)).reshape(b, h, w)
        if idx.max(initial=0) >= len(self.candidates):
            raise MalformedError("mask index out of range")
        index = torch.from_numpy(idx.astype(np.int64)).to(self.device)
        mask = self._sample_mask(group, index)
        levels = np.zeros(mask.shape, dtype=np.int32)
        for where in self._contexts(idx, mask):
            table = dec.decode(TABLE_INDEX)
            if table >= len(GEOMETRIC_RATIOS):
                raise MalformedError("sample table index out of range")
            levels[where] = dec.decode_array(int(where.sum()), self._table(table)) - self.limit
        return self.reconstruct(group, index, torch.from_numpy(levels).to(self.device))

    # -- whole GOPs ------------------------------------------------------------------------

    def encode_gop(self, gop: Gop, prediction: Gop) -> tuple[bytes, Gop]:
        """(SAMPLES payload, the decoder's reconstruction) of ``gop`` over ``prediction``.

        The payload opens with an on/off flag: in hybrid mode the samples are kept only if they
        lower D + lambda * R over the whole GOP (R: the payload's real size); off, the
        prediction is the output.
        """
        groups = plane_groups(gop, prediction, self.device)
        enc = SymbolEncoder()
        enc.encode(1, FLAG)
        outs, gain = [], 0.0
        for group in groups:
            out = self.encode_group(group, enc)
            outs.append(out)
            gain += _sse(group.p, group.x, group.valid) - _sse(out, group.x, group.valid)
        payload = enc.finish()
        if not self.pure and gain <= self.lam * 8 * len(payload):
            off = SymbolEncoder()
            off.encode(0, FLAG)
            return off.finish(), prediction
        return payload, gop_from_groups(outs, gop)

    @staticmethod
    def is_on(payload: bytes) -> bool:
        """Whether a SAMPLES payload carries samples (hybrid mode may switch a GOP's off)."""
        return SymbolDecoder(payload).decode(FLAG) == 1

    def decode_gop(self, payload: bytes, prediction: Gop) -> Gop:
        """The GOP a SAMPLES payload reconstructs over ``prediction``."""
        dec = SymbolDecoder(payload)
        if dec.decode(FLAG) == 0:
            return prediction
        groups = plane_groups(None, prediction, self.device)
        return gop_from_groups([self.decode_group(g, dec) for g in groups], prediction)

    def _contexts(self, idx: np.ndarray, mask: np.ndarray) -> Iterator[np.ndarray]:
        """Boolean selectors ``[B, T, H, W]`` of the coded samples, one per density class.

        (Luma and chroma are separate groups, so the plane kind is part of the context too.)
        """
        cls = self.classes[idx]  # [B, h, w]
        cls_map = np.repeat(np.repeat(cls, PATCH_H, axis=1), PATCH_W, axis=2)[:, None]
        for c in range(DENSITY_CLASSES):
            yield mask & (cls_map == c)

    def _table(self, table: int) -> FrequencyTable:
        return _frequency_table(table, self.limit)


def _patch_sums(x: torch.Tensor) -> torch.Tensor:
    """``[B, H, W]`` -> the sum over each 8x8 patch ``[B, H/8, W/8]``."""
    return F.avg_pool2d(x, PATCH_H) * (PATCH_H * PATCH_W)


def _sse(a: torch.Tensor, b: torch.Tensor, valid: torch.Tensor) -> float:
    """The squared error of a and b ``[B, T, H, W]`` over the picture (``valid``), a frame at a
    time (no whole-GOP temporaries)."""
    return sum(float(((a[:, t] - b[:, t]).square() * valid).sum()) for t in range(a.shape[1]))


_TABLES: dict[tuple[int, int], FrequencyTable] = {}


def _frequency_table(table: int, limit: int) -> FrequencyTable:
    key = (table, limit)
    if key not in _TABLES:
        _TABLES[key] = FrequencyTable(geometric_counts(table, limit))
    return _TABLES[key]


# -- GOPs <-> plane groups ---------------------------------------------------------------------


def plane_groups(gop: Gop | None, prediction: Gop, device: torch.device) -> list[PlaneGroup]:
    """Luma and chroma groups of a GOP, padded by edge replication to the 8x8 patch grid."""
    groups = []
    for names, chroma in ((("y",), False), (("u", "v"), True)):
        p = _stack([getattr(prediction, n) for n in names], device)
        x = _stack([getattr(gop, n) for n in names], device) if gop is not None else None
        h, w = p.shape[-2:]
        ph, pw = -h % PATCH_H, -w % PATCH_W
        valid = F.pad(torch.ones(1, 1, h, w, device=device), (0, pw, 0, ph))[0, 0]
        groups.append(PlaneGroup(_pad(x, ph, pw), _pad(p, ph, pw), valid, chroma))
    return groups


def gop_from_groups(groups: list[torch.Tensor], like: Gop) -> Gop:
    """Round reconstructed groups (luma ``[1, T, H, W]``, chroma ``[2, T, h, w]``) into a GOP."""
    y, uv = (g.round().to(torch.uint8).cpu().numpy() for g in groups)
    th, tw = like.y.shape[1:]
    ch, cw = like.u.shape[1:]
    return Gop(y[0, :, :th, :tw], uv[0, :, :ch, :cw], uv[1, :, :ch, :cw], like.start)


def held_prediction(previous: Gop | None, frames: int, start: int, size: tuple[int, int]) -> Gop:
    """Pure mode's prediction of a GOP of ``frames`` frames from ``start``, luma ``size``
    (height, width): the previous GOP's last frame held, or mid-grey for the first GOP."""
    if previous is None:
        h, w = size
        y = np.full((frames, h, w), 128, np.uint8)
        uv = np.full((frames, (h + 1) // 2, (w + 1) // 2), 128, np.uint8)
        return Gop(y, uv, uv.copy(), start)
    return Gop(*(np.repeat(plane[-1:], frames, 0) for plane in previous.planes()), start)


def _stack(planes: list[np.ndarray], device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.stack(planes)).to(device, torch.float32)


def _pad(x: torch.Tensor | None, ph: int, pw: int) -> torch.Tensor | None:
    if x is None or (ph == 0 and pw == 0):
        return x
    return F.pad(x, (0, pw, 0, ph), mode="replicate")


class MaskStage(Stage):
    """Seed 000's mask codec as a stage (hybrid mode): per [16, 8, 8] patch one of the trained
    sampling masks; the masked samples of the residual over the prediction travel in the GOP's
    SAMPLES chunk, kept only where they lower D + lambda R."""

    name, seed, chunk = "masks", "000", Samples

    def __init__(
        self,
        qp: int,
        device: torch.device,
        search: str | None = "net",
        recon_model: str = RECON_MODEL,
    ) -> None:
        super().__init__()
        self.codec = MaskCodec(qp, False, device, search, recon_model=recon_model)
        self.recon_model = recon_model

    def models(self) -> tuple[str, ...]:
        return mask_models(self.recon_model)

    def encode_gop(self, source: Gop, prediction: Gop, ctx: GopContext) -> tuple[Gop, Samples]:
        with self.timed():
            payload, recon = self.codec.encode_gop(source, prediction)
        self._used |= self.codec.is_on(payload)
        return recon, Samples(ctx.index, payload)

    def decode_gop(self, prediction: Gop, payload: bytes, ctx: GopContext) -> Gop:
        with self.timed():
            return self.codec.decode_gop(payload, prediction)

"""The mask codec: patch geometry, integer sample models, payload round trips, shipped models."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import synthetic_planes

from vcodec.entropy import SymbolDecoder, SymbolEncoder, adaptive_probabilities
from vcodec.errors import MalformedError, UnknownModelError
from vcodec.frames import Gop
from vcodec.models import registry
from vcodec.models.reconstruction import ReconstructionNet, ReconstructionNetV2
from vcodec.models.selector import MaskSelector
from vcodec.stages.mask_samples import (
    GEOMETRIC_RATIOS,
    best_table,
    geometric_counts,
    max_level,
    quantise,
    sample_step,
)
from vcodec.stages.masks import (
    MaskCodec,
    expand,
    held_prediction,
    mask_models,
    plane_groups,
    recon_model,
)

CPU = torch.device("cpu")


def tiny_codec(pure: bool, search: str | None = "net", qp: int = 32) -> MaskCodec:
    """A codec with small random networks and 8 i.i.d. candidates (index 0 empty)."""
    torch.manual_seed(0)
    density = torch.tensor([0, 1 / 64, 1 / 16, 1 / 8, 1 / 4, 1 / 2, 3 / 4, 1.0])
    candidates = (torch.rand(8, 16, 8, 8) < density[:, None, None, None]).float()
    recon = ReconstructionNet(channels=8, blocks=1).eval()
    selector = MaskSelector(8, channels=8).eval()
    return MaskCodec(qp, pure, CPU, search, candidates=candidates, recon=recon, selector=selector)


def gop_of(width: int, height: int, frames: int) -> Gop:
    return Gop.from_frames(synthetic_planes(width, height, frames))


def grey(gop: Gop) -> Gop:
    """The prediction of a stream's first GOP in pure mode."""
    return held_prediction(None, gop.n_frames, gop.start, (gop.height, gop.width))


def test_expand_places_each_patch_mask() -> None:
    candidates = torch.zeros(3, 16, 8, 8)
    candidates[1, 0, 0, 0] = 1  # one sample, first frame, top-left
    candidates[2, 5, 7, 3] = 1
    index = torch.tensor([[[0, 1], [2, 0]]])  # [B=1, h=2, w=2]
    mask = expand(candidates, index, 16)
    assert mask.shape == (1, 16, 16, 16)
    assert torch.nonzero(mask).tolist() == [[0, 0, 0, 8], [0, 5, 15, 3]]
    assert expand(candidates, index, 4).shape == (1, 4, 16, 16)  # a short GOP: first frames


def test_geometric_tables_are_integer_and_symmetric() -> None:
    counts = geometric_counts(10, 5)
    assert counts == counts[::-1]
    assert counts[5] == 1 << 16 and all(isinstance(c, int) and c >= 1 for c in counts)
    assert len(GEOMETRIC_RATIOS) == 32
    # golden: table 3 (r = 10611 / 2^16) over -2..2
    assert geometric_counts(3, 2) == (1718, 10611, 65536, 10611, 1718)


def test_quantiser_and_best_table() -> None:
    step = sample_step(32, pure=False)
    assert step == pytest.approx(2 ** (16 / 6))
    assert sample_step(38, pure=True) == pytest.approx(2 * sample_step(32, pure=True))
    limit = max_level(step)
    q = quantise(np.array([-300.0, -1.0, 0.0, 7.0, 300.0]), step)
    assert q.tolist() == [-limit, 0, 0, 1, limit]
    zeros = np.zeros(1000, dtype=np.int32)
    wide = np.random.default_rng(0).integers(-limit, limit + 1, 1000).astype(np.int32)
    assert best_table(zeros, limit)[0] == 0
    assert best_table(wide, limit)[0] > 20
    assert best_table(zeros, limit)[1] < best_table(wide, limit)[1]


def test_adaptive_model_round_trip_and_golden_bytes() -> None:
    symbols = np.array([0, 0, 3, 0, 1, 0, 0, 3], dtype=np.int32)
    probs = adaptive_probabilities(symbols, 4)
    assert np.allclose(probs.sum(1), 1) and probs[0].tolist() == [0.25] * 4
    assert probs[2, 0] == 65 / 68  # two zeros seen: (1 + 64) / (4 + 64)
    enc = SymbolEncoder()
    enc.encode_adaptive(symbols, 4)
    data = enc.finish()
    assert data.hex() == "3a37a883"
    assert SymbolDecoder(data).decode_adaptive(len(symbols), 4).tolist() == symbols.tolist()


@pytest.mark.parametrize("pure", [True, False])
@pytest.mark.parametrize("size", [(64, 48, 16), (37, 21, 5)])
def test_gop_round_trip_matches_the_encoder(pure: bool, size: tuple[int, int, int]) -> None:
    """The decoder rebuilds exactly the frames the encoder predicted, odd sizes and short GOPs."""
    gop = gop_of(*size)
    codec = tiny_codec(pure)
    prediction = grey(gop)
    if not pure:  # hybrid: a blurred version of the GOP stands in for the base layer
        prediction = Gop(*((p // 8 * 8).astype(np.uint8) for p in gop.planes()), 0)
    payload, recon = codec.encode_gop(gop, prediction)
    decoded = tiny_codec(pure, None).decode_gop(payload, prediction)
    for a, b, c in zip(decoded.planes(), recon.planes(), gop.planes(), strict=True):
        assert a.shape == c.shape and a.dtype == np.uint8
        assert np.array_equal(a, b)


def test_exhaustive_search_beats_a_fixed_mask_on_rd_cost() -> None:
    gop = gop_of(64, 48, 16)
    codec = tiny_codec(True, "exhaustive", qp=22)
    group = plane_groups(gop, grey(gop), CPU)[0]
    costs = codec.rd_costs(group)  # [1, K, h, w]
    chosen = costs.min(1).values.sum()
    assert all(chosen <= costs[:, k].sum() for k in range(costs.shape[1]))
    assert torch.equal(codec.select(group), costs.argmin(1))


def test_damaged_payload_is_a_bitstream_error() -> None:
    gop = gop_of(64, 48, 16)
    codec = tiny_codec(True)
    payload, _ = codec.encode_gop(gop, grey(gop))
    with pytest.raises(MalformedError):
        tiny_codec(True, None).decode_gop(payload + b"\0", grey(gop))


def test_pure_prediction_holds_the_last_frame() -> None:
    gop = gop_of(32, 16, 16)
    assert (grey(gop).y == 128).all() and grey(gop).u.shape == gop.u.shape
    held = held_prediction(gop, 3, 16, (16, 32))
    assert held.n_frames == 3 and np.array_equal(held.y[2], gop.y[-1])


def test_shipped_models_load_and_are_hash_checked(tmp_path, monkeypatch) -> None:
    recon = registry.load("recon-v1")
    assert isinstance(recon, ReconstructionNet)
    masks = registry.load("masks-v1")
    assert masks.shape == (registry.MASK_CANDIDATES, 16, 8, 8)
    density = masks.flatten(1).float().mean(1)
    assert density[0] == 0 and density[-1] == 1 and bool((density.diff() >= 0).all())
    for name in ("recon-v1", "masks-v1", "selector-v1"):
        (tmp_path / registry.REGISTRY[name].weights).write_bytes(b"not the weights")
    monkeypatch.setattr(registry, "WEIGHTS_DIR", tmp_path)
    registry.load.cache_clear()
    try:
        with pytest.raises(UnknownModelError, match="do not match their sha256"):
            registry.load("recon-v1")
        (tmp_path / "selector-v1.pt").unlink()
        with pytest.raises(UnknownModelError, match="missing"):
            registry.load("selector-v1")
    finally:
        registry.load.cache_clear()


def test_tiles_give_the_whole_planes_output(monkeypatch) -> None:
    """The networks on tiles with their halo: the same output as on the whole plane (so the
    tile size bounds memory without changing a pixel), for the reconstruction and the
    selector, with tiles cut across both rows and columns."""
    from vcodec.stages import masks

    rng = torch.Generator().manual_seed(0)
    x = torch.rand(1, 6, 16, 96, 136, generator=rng, dtype=torch.float64)
    recon = copy.deepcopy(registry.load("recon-v1")).to(torch.float64)  # (shared modules)
    recon2 = ReconstructionNetV2().to(torch.float64).eval()  # its reach, at any weights
    selector = copy.deepcopy(registry.load("selector-v1")).to(torch.float64)
    with torch.no_grad():
        for net, scale in ((recon, 1), (recon2, 1), (selector, masks.PATCH_H)):
            whole = net(x)
            monkeypatch.setattr(masks, "TILE_ROWS", 32)
            monkeypatch.setattr(masks, "TILE_COLS", 64)
            tile_input = lambda rows, cols: x[..., rows, cols]  # noqa: E731
            tiles = masks.tiled(net, tile_input, 96, 136, scale, net.halo)
            monkeypatch.undo()
            assert tiles.shape == whole.shape
            assert torch.allclose(tiles, whole, atol=1e-9)


@pytest.mark.parametrize(
    "net", [ReconstructionNet(channels=8, blocks=1), ReconstructionNetV2(8, 1)]
)
def test_fills_search_prices_each_candidate(net) -> None:
    """The search on the network's fills: the empty candidate costs no bits, only the
    prediction's error; under the full candidate at a fine step recon-v2's fills are the
    samples, so the patch costs little more than its rate. A pure stream coded with it
    decodes to the encoder's frames."""
    codec = tiny_codec(True, "fills", qp=2)
    codec.recon_net = net.to(torch.float64).eval()
    gop = gop_of(32, 16, 16)
    group = plane_groups(gop, grey(gop), CPU)[0]
    fills = codec.rd_costs(group, fills=True)
    assert fills.shape == (1, 8, 2, 4)
    prediction_error = F.avg_pool2d((group.p - group.x).square().sum(1), 8) * 64
    assert torch.allclose(fills[:, 0], prediction_error)  # nothing sampled: the prediction
    if isinstance(net, ReconstructionNetV2):  # its frame's own fill is exact at the samples
        assert (fills[:, -1] < 0.01 * prediction_error).all()  # all sampled: the rate, nearly
    assert (fills[:, 1:-1] > 0).all()
    payload, recon = codec.encode_gop(gop, grey(gop))
    decoder = tiny_codec(True, None, qp=2)
    decoder.recon_net = codec.recon_net
    assert np.array_equal(decoder.decode_gop(payload, grey(gop)).y, recon.y)


def test_streams_name_one_reconstruction_network() -> None:
    assert mask_models("recon-v1") == ("masks-v1", "recon-v1")
    assert recon_model({"masks-v1": "ab", "recon-v2": "cd", "post-v1": "ef"}) == "recon-v2"
    assert recon_model(["masks-v1", "recon-v1"]) == "recon-v1"
    assert recon_model({"masks-v1": "ab", "recon-v1": "cd", "recon-v2": "ef"}) is None
    assert recon_model({"recon-v2": "cd"}) is None

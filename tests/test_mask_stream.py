"""The mask codec inside .vcx streams: pure and hybrid modes, shipped models, damage, CLI."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest
from conftest import synthetic_planes
from typer.testing import CliRunner

from vcodec.bitstream.container import Samples, VcxReader, encode_header
from vcodec.cli.main import app
from vcodec.errors import MalformedError, UnknownModelError, VcxError
from vcodec.frames import VideoInfo
from vcodec.metrics import psnr
from vcodec.models.registry import REGISTRY
from vcodec.pipeline.config import EncodeConfig
from vcodec.pipeline.decoder import VcxDecoder
from vcodec.pipeline.encoder import encode_gops


def clip(width: int = 64, height: int = 48, frames: int = 20):
    from fractions import Fraction

    from vcodec.frames import Gop

    planes = synthetic_planes(width, height, frames)
    gops = [Gop.from_frames(planes[i : i + 16], i) for i in range(0, frames, 16)]
    return VideoInfo(width, height, Fraction(25)), gops


def run(config: EncodeConfig, width: int = 64, height: int = 48, frames: int = 20):
    info, gops = clip(width, height, frames)
    buf = io.BytesIO()
    encode_gops(gops, info, buf, config)
    data = buf.getvalue()
    decoded = list(VcxDecoder(io.BytesIO(data), "cpu").gops())
    ref = np.concatenate([g.y for g in gops])
    out = np.concatenate([g.y for g in decoded])
    assert out.shape == ref.shape
    assert [g.u.shape for g in decoded] == [g.u.shape for g in gops]
    return data, float(psnr(ref, out).mean())


def test_pure_mode_needs_no_base_layer() -> None:
    data, quality = run(EncodeConfig(qp=22, mode="pure", device="cpu"))
    chunks = list(VcxReader(io.BytesIO(data)))
    names = {type(c).__name__ for c in chunks}
    assert "Segment" not in names and "BaseData" not in names
    assert sum(isinstance(c, Samples) for c in chunks) == 2
    header = VcxReader(io.BytesIO(data)).header
    assert header.mode == "pure" and set(header.models) == {"masks-v1", "recon-v2"}
    assert 25 < quality < 60


def test_pure_mode_with_the_first_reconstruction_network() -> None:
    """Streams of recon-v1 (before recon-v2 shipped) name it and still decode with it."""
    data, quality = run(EncodeConfig(qp=22, mode="pure", recon_model="recon-v1", device="cpu"))
    assert set(VcxReader(io.BytesIO(data)).header.models) == {"masks-v1", "recon-v1"}
    assert 25 < quality < 60


def test_pure_mode_rate_falls_with_qp() -> None:
    sizes = [len(run(EncodeConfig(qp=q, mode="pure", device="cpu"))[0]) for q in (22, 37)]
    assert sizes[1] < sizes[0]


@pytest.mark.parametrize("search", ["net", "exhaustive"])
def test_hybrid_masks_odd_size(search: str) -> None:
    _, quality = run(EncodeConfig(qp=27, mask_search=search, device="cpu"), 65, 49, 17)
    assert 28 < quality < 60


def test_hybrid_without_masks_has_no_samples() -> None:
    data, _ = run(EncodeConfig(qp=32, masks=False, device="cpu"))
    chunks = list(VcxReader(io.BytesIO(data)))
    assert not any(isinstance(c, Samples) for c in chunks)
    assert VcxReader(io.BytesIO(data)).header.models.keys() <= {"post-v1"}


def test_stream_with_other_weights_is_refused() -> None:
    data, _ = run(EncodeConfig(qp=32, mode="pure", device="cpu"), frames=4)
    reader = VcxReader(io.BytesIO(data))
    models = dict(reader.header.models, **{"recon-v2": "00" * 4})
    forged = encode_header(replace(reader.header, models=models)) + data[reader.offset :]
    with pytest.raises(UnknownModelError, match="recon-v2"):
        VcxDecoder(io.BytesIO(forged), "cpu")
    no_models = encode_header(replace(reader.header, models={})) + data[reader.offset :]
    with pytest.raises(MalformedError, match="pure-mode"):
        VcxDecoder(io.BytesIO(no_models), "cpu")


def test_damaged_samples_are_reported() -> None:
    data, _ = run(EncodeConfig(qp=22, mode="pure", device="cpu"), frames=4)
    cut = data[: len(data) - 20]
    with pytest.raises(VcxError):
        list(VcxDecoder(io.BytesIO(cut), "cpu").gops())


def test_shipped_registry_hashes_are_real() -> None:
    for spec in REGISTRY.values():
        assert len(spec.sha256) == 64


def test_cli_pure_and_exhaustive(tmp_path, clip_factory) -> None:
    src = clip_factory(tmp_path / "in.y4m", 48, 32, 6)
    runner = CliRunner()
    for args in (["--mode", "pure"], ["--mask-search", "exhaustive"], ["--no-masks"]):
        dst = tmp_path / f"{args[0].strip('-')}.vcx"
        r = runner.invoke(app, ["encode", str(src), "-o", str(dst), "--device", "cpu", *args])
        assert r.exit_code == 0, r.output
        r = runner.invoke(app, ["decode", str(dst), "-o", str(tmp_path / f"{dst.stem}.y4m")])
        assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["encode", str(src), "-o", str(tmp_path / "x.vcx"), "--mode", "raw"])
    assert r.exit_code == 3 and "--mode" in r.output

"""`vcodec train`: every command runs on a tiny example cache and writes loadable weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from conftest import synthetic_planes
from typer.testing import CliRunner

from vcodec.cli.main import app
from vcodec.models import registry
from vcodec.models.reconstruction import ReconstructionNetV2
from vcodec.models.registry import MASK_CANDIDATES
from vcodec.train.data import Examples
from vcodec.train.recon import load_recon


def tiny_cache(path) -> None:
    planes = synthetic_planes(64, 64, 16)
    x = np.stack([np.stack([p[0] for p in planes])] * 4)
    p = (x // 16 * 16).astype(np.uint8)
    Examples(x, p, np.array([22, 32, 27, 37]), np.array([True, False, True, False]),
             np.zeros(4, bool)).save(path)  # fmt: skip


def test_train_commands_chain(tmp_path) -> None:
    cache = tmp_path / "ex.npz"
    tiny_cache(cache)
    runner = CliRunner()
    common = ["--cache", str(cache), "--steps", "2", "--device", "cpu"]
    r = runner.invoke(app, ["train", "recon", *common, "--out", str(tmp_path / "r.pt")])
    assert r.exit_code == 0, r.output
    assert "sha256" in r.output
    args = ["train", "masks", *common, "--recon", str(tmp_path / "r.pt")]
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "m.pt")])
    assert r.exit_code == 0, r.output
    masks = torch.load(tmp_path / "m.pt", weights_only=True)
    assert masks.shape == (MASK_CANDIDATES, 16, 8, 8) and masks[0].sum() == 0 and masks[-1].all()
    r = runner.invoke(app, [*args, "--out", str(tmp_path / "m.pt")])  # exists: refused at once
    assert r.exit_code == 6 and "--force" in r.output
    r = runner.invoke(
        app,
        ["train", "selector", *common, "--recon", str(tmp_path / "r.pt"), "--masks",
         str(tmp_path / "m.pt"), "--label-crops", "2", "--out", str(tmp_path / "s.pt")],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["train", "recon", "--steps", "1", "--out", str(tmp_path / "x.pt")])
    assert r.exit_code == 3 and "--data" in r.output


def test_train_recon_v2_feeds_the_selector(tmp_path) -> None:
    """recon-v2 trains on candidate and random masks, and the selector's labels can come
    from it (the weights' kind is told from the file)."""
    cache = tmp_path / "ex.npz"
    tiny_cache(cache)
    runner = CliRunner()
    common = ["--cache", str(cache), "--steps", "2", "--device", "cpu"]
    masks = str(Path(registry.WEIGHTS_DIR) / "masks-v1.pt")
    r = runner.invoke(app, ["train", "recon", *common, "--model", "recon-v2", "--masks", masks,
                            "--random-share", "0.5", "--same-share", "0.5",
                            "--out", str(tmp_path / "r2.pt")])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert isinstance(load_recon(tmp_path / "r2.pt"), ReconstructionNetV2)
    r = runner.invoke(
        app,
        ["train", "selector", *common, "--recon", str(tmp_path / "r2.pt"), "--masks", masks,
         "--label-crops", "2", "--out", str(tmp_path / "s.pt")],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["train", "masks", *common, "--recon", masks, "--out",
                            str(tmp_path / "m.pt")])  # fmt: skip
    assert r.exit_code == 3 and "not the weights of a reconstruction network" in r.output

"""The weights registry: models are named by a stable string plus the sha256 of their weights.

A stream names each model it needs by that string and its id, the first bytes of the sha256."""

from __future__ import annotations

import hashlib
import importlib
import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from vcodec.bitstream.container import MODEL_ID_BYTES
from vcodec.errors import UnknownModelError
from vcodec.lazy import lazy_module

torch = lazy_module("torch")
nn = lazy_module("torch.nn")

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class ModelSpec:
    """A shipped model: its name, weights file (in WEIGHTS_DIR), that file's sha256, factory.

    The factory builds the empty module the weights load into; None for plain tensors (the
    candidate masks).
    """

    name: str
    weights: str
    sha256: str
    factory: Callable[[], nn.Module] | None = None

    @property
    def model_id(self) -> str:
        """What a stream's header names the weights by (hex)."""
        return self.sha256[: 2 * MODEL_ID_BYTES]


def _factory(module: str, name: str, *args: object) -> Callable[[], nn.Module]:
    """Builds ``vcodec.models.<module>.<name>(*args)``, importing it (and torch) only then."""

    def build() -> nn.Module:
        return getattr(importlib.import_module(f"vcodec.models.{module}"), name)(*args)

    return build


MASK_CANDIDATES = 32  # K: candidate masks per patch, index 0 the empty mask

REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "masks-v1",
            "masks-v1.pt",
            "5d08b7bb9c09b5c4a1a7e6fc50b3fbc2e352742b7cba20fd9dae69782cfa0d64",
            None,
        ),
        ModelSpec(
            "recon-v1",
            "recon-v1.pt",
            "988952a2f10b557107639933f5fc1ddd53e98a9bdaf303e563b30460b52ade42",
            _factory("reconstruction", "ReconstructionNet"),
        ),
        ModelSpec(
            "recon-v2",
            "recon-v2.pt",
            "d4810077fa12e81e9bfdc27fe5fa436d15e06e898b3eb6fa815b105fa68640eb",
            _factory("reconstruction", "ReconstructionNetV2"),
        ),
        ModelSpec(
            "selector-v1",
            "selector-v1.pt",
            "23ef42c5387a31f80233a5f038e8f1cc708917110fbc220430d1101ee1807a20",
            _factory("selector", "MaskSelector", MASK_CANDIDATES),
        ),
        ModelSpec(
            "post-v1",
            "post-v1.pt",
            "9ceb5558917463c0dc86dfbb95f0904bacb3fb931c405b258399aa73cc1d45eb",
            _factory("postprocess", "PostNet"),
        ),
        ModelSpec(
            "post-v2",
            "post-v2.pt",
            "70dc09a6a612d4f9f1a148b8a26ccf7e1fb306af04fbe6f4662f1cce47ad73f4",
            _factory("postprocess", "LitePostNet"),
        ),
        ModelSpec(
            "post-task-v1",
            "post-task-v1.pt",
            "251b0cb171c82b9587a40c31b6fdaa5b4939f27f027103fa361604de27465594",
            _factory("postprocess", "PostNet"),
        ),
        ModelSpec(
            "predict-v1",
            "predict-v1.pt",
            "6bf186e4cd0d9aa54b5de48c7521af9c03e8c0c60ccf883a72fd7c2659775cb7",
            _factory("postprocess", "PostNet"),
        ),
        ModelSpec(
            "params-v2",
            "params-v2.pt",
            "6fcb40e77d78d501cf06351e98266e1ac5e2fdf7cbdbf7e971cf01d83ec37c33",
            _factory("params", "ParamNet"),
        ),
    )
}


def require(name: str, model_id: str) -> ModelSpec:
    """The registered model a stream names, or UnknownModelError if absent or of other weights.

    ``model_id``: the header's, a prefix of the weights' sha256 (the whole of it before v6)."""
    spec = REGISTRY.get(name)
    if spec is None:
        raise UnknownModelError(
            f"the stream needs model {name!r}, which this vcodec does not have; upgrade vcodec"
        )
    if not spec.sha256.startswith(model_id):
        raise UnknownModelError(
            f"the stream needs model {name!r} with weights {model_id[:12]}, this vcodec has "
            f"{spec.sha256[: min(12, len(model_id))]}; decode it with the vcodec version that "
            "encoded it"
        )
    return spec


@cache
def load(name: str) -> nn.Module | torch.Tensor:
    """The shipped model ``name`` with its weights, checked against the registered sha256."""
    spec = REGISTRY.get(name)
    if spec is None:
        raise UnknownModelError(f"no model named {name!r}; known: {', '.join(REGISTRY)}")
    path = WEIGHTS_DIR / spec.weights
    try:
        data = path.read_bytes()
    except OSError:
        raise UnknownModelError(
            f"the weights of {name!r} are missing ({path}); reinstall vcodec"
        ) from None
    if hashlib.sha256(data).hexdigest() != spec.sha256:
        raise UnknownModelError(f"the weights of {name!r} ({path}) do not match their sha256")
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if spec.factory is None:
        return state
    module = spec.factory()
    module.load_state_dict(state)
    return module.eval()

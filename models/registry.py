"""The weights registry: models are named by a stable string plus the sha256 of their weights."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vcodec.bitstream.errors import UnknownModelError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class ModelSpec:
    """A shipped model: its name, weights file (in WEIGHTS_DIR) and that file's sha256."""

    name: str
    weights: str
    sha256: str


REGISTRY: dict[str, ModelSpec] = {}  # v0 codes with no learned model; the mask codec adds some


def require(name: str, sha256: str) -> ModelSpec:
    """The registered model a stream names, or UnknownModelError if absent or of other weights."""
    spec = REGISTRY.get(name)
    if spec is None:
        raise UnknownModelError(
            f"the stream needs model {name!r}, which this vcodec does not have; upgrade vcodec"
        )
    if spec.sha256 != sha256:
        raise UnknownModelError(
            f"the stream needs model {name!r} with weights {sha256[:12]}, this vcodec has "
            f"{spec.sha256[:12]}; decode it with the vcodec version that encoded it"
        )
    return spec

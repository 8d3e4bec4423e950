"""Which stages a config (encoder) or a stream header (decoder) turns on, and in what order."""

from __future__ import annotations

from dataclasses import dataclass

from vcodec.bitstream.container import FORMAT_VERSION, StreamHeader
from vcodec.frames import VideoInfo
from vcodec.lazy import lazy_module
from vcodec.pipeline.config import SPEED_WIENER_LAYOUTS, EncodeConfig
from vcodec.stages.masks import MaskStage, recon_dtype, recon_model
from vcodec.stages.post import PostStage, post_model
from vcodec.stages.roi import RoiStage, roi_finder
from vcodec.stages.scale import ScaleStage
from vcodec.stages.stage import Stage
from vcodec.stages.temporal import (
    PREDICT_MODEL,
    TemporalStage,
)
from vcodec.stages.wiener import WienerStage

torch = lazy_module("torch")


@dataclass
class Plan:
    """A hybrid stream's stages. Before the base layer: roi, temporal, scale; after it (on the
    decoded frames, encoder and decoder alike): roi, scale, temporal, post, wiener, masks."""

    scale: ScaleStage
    temporal: TemporalStage
    wiener: WienerStage | None = None
    roi: RoiStage | None = None
    post: PostStage | None = None
    masks: MaskStage | None = None

    def before_base(self) -> list[Stage]:
        return [s for s in (self.roi, self.temporal, self.scale) if s is not None]

    def after_base(self) -> list[Stage]:
        """Every stage, in the order a GOP meets them once its base layer is decoded."""
        stages = (self.roi, self.scale, self.temporal, self.post, self.wiener, self.masks)
        return [s for s in stages if s is not None]

    def models(self) -> list[str]:
        """The registry names the header carries: every model of every stage that is on."""
        return [m for stage in self.after_base() for m in stage.models()]

    def unused_models(self) -> set[str]:
        """Models of stages no GOP took: the stream is rewritten without them."""
        return {m for stage in self.after_base() if not stage.used() for m in stage.models()}

    def costs(self) -> dict[str, dict[str, float | int]]:
        return {stage.name: stage.cost.as_dict() for stage in self.after_base()}


def encoder_plan(config: EncodeConfig, info: VideoInfo, device: torch.device) -> Plan:
    """The stages ``config`` (resolved: every switch True or False) turns on."""
    dtype = recon_dtype() if config.masks else None  # the samples' prediction rounds alike
    roi = None
    if config.roi != "none":
        finder = roi_finder(config.roi, config.roi_model, str(device))
        roi = RoiStage(
            finder, config.background_scale, config.roi_qp_offset, config.background_qp_offset
        )
    # the parameter module was trained on x265/x264 base layers: on AV1, auto is s = 1
    auto = roi is None and config.base != "av1"
    scale = ScaleStage(config.scale, config.qp, info.height, info.width, device, auto)
    wiener = None
    if config.wiener:  # its filtered frames are read only by the mask codec's prediction
        layouts = SPEED_WIENER_LAYOUTS[config.speed]
        wiener = WienerStage(config.qp, FORMAT_VERSION, config.masks, layouts)
    return Plan(
        scale=scale,
        temporal=TemporalStage(
            device,
            drop=config.temporal,
            flow=config.temporal and config.flow and not config.masks,
            model=config.temporal and config.predict_net,
            dtype=dtype,
        ),
        wiener=wiener,
        roi=roi,
        post=PostStage(device, dtype, config.post_model) if config.post else None,
        masks=MaskStage(config.qp, device, config.mask_search, config.recon_model)
        if config.masks
        else None,
    )


def decoder_plan(header: StreamHeader, version: int, device: torch.device) -> Plan:
    """The stages a hybrid stream's header names (its models and format ``version``)."""
    recon = recon_model(header.models)
    dtype = recon_dtype() if recon else None
    post = post_model(header.models)
    return Plan(
        scale=ScaleStage("1", header.qp, header.height, header.width, device, auto=False),
        temporal=TemporalStage(device, model=PREDICT_MODEL in header.models, dtype=dtype),
        wiener=WienerStage(header.qp, version),
        roi=RoiStage(None, 1),
        post=PostStage(device, dtype, post) if post else None,
        masks=MaskStage(header.qp, device, None, recon) if recon else None,
    )

"""Encoder settings: EncodeConfig, whose fields the CLI's options map one to one onto."""

from __future__ import annotations

from dataclasses import dataclass, replace

from vcodec.bitstream.container import MODES, TASKS
from vcodec.device import resolve_device
from vcodec.errors import InputError
from vcodec.pipeline.segments import DEFAULT_SEGMENT_SECONDS
from vcodec.stages.base_layer import BASE_CODECS, PRESETS, TUNES, get_codec
from vcodec.stages.masks import MASK_SEARCHES, RECON_MODEL, RECON_MODELS
from vcodec.stages.post import POST_MODEL, POST_MODELS
from vcodec.stages.roi import (
    BACKGROUND_QP_OFFSET,
    BACKGROUND_SCALES,
    QP_RANGE,
    ROI_QP_OFFSET,
    ROI_SOURCES,
    detector_roi,
)
from vcodec.stages.scale import SCALES

SPEEDS = ("fast", "medium", "slow")  # --speed: which stages run when not asked by name
# The stages each --speed turns on (hybrid mode). A stage asked for by name (--masks,
# --no-wiener, ...) overrides its speed's choice. README: what each costs and buys.
SPEED_STAGES: dict[str, dict[str, bool]] = {
    "fast": {
        "masks": False,
        "post": False,
        "temporal": True,
        "predict_net": False,
        "flow": False,
        "wiener": False,
    },
    "medium": {
        "masks": False,
        "post": False,
        "temporal": True,
        "predict_net": False,
        "flow": False,
        "wiener": True,
    },
    # every stage that pays, at its most thorough search: the Wiener filter's 6 and 18 classes
    # too. The networks that buy nothing measurable (models/README.md: the mask samples +0.03 %
    # at 60x the encode time, post-v1 +0.1 %, post-v2 ~0, predict-v1 within 0.2 dB of the mean)
    # are options asked by name: --masks, --post [--post-model], --predict-net.
    "slow": {
        "masks": False,
        "post": False,
        "temporal": True,
        "predict_net": False,
        "flow": False,
        "wiener": True,
    },
}


# Stages that do not pay on a base codec, off there at every speed unless asked by name. On
# SVT-AV1 (models/README.md, *AV1 base*): temporal scaling +0.25 % (+1.0 % on a static clip: AV1
# codes a static frame for almost nothing, so dropping it saves little and the mean costs
# more), the Wiener filters -0.09 % for twice the encode time (AV1 restores its own; -0.49 % at
# SVT preset 10, where preset 9 alone is 13 % smaller). Until stop 28 slow ran them: +2.04 % at
# SVT preset 10, and 2.1 GB for a 1080p encode.
BASE_STAGES_OFF = {"av1": ("temporal", "wiener")}

# --base auto (the default): SVT-AV1. With one keyframe per segment it is smaller than x265
# with temporal scaling on every fixed camera measured, still scenes included (docs/results.md,
# *Fixed cameras*), as it was on moving content. Where the settings were measured on x265
# (--roi and --task) and without a base layer (--mode pure): x265.
AUTO_BASE, AUTO_PICK, STILL_BASE = "auto", "av1", "x265"
BASES = (AUTO_BASE, *BASE_CODECS)  # what --base takes

# The Wiener filter's class layouts the encoder tries at each --speed (LAYOUTS[:n]): at 720p one
# class takes ~8 ms a luma frame to apply, 6 and 18 classes 22-31 ms (a per-pixel coefficient
# lookup); 6 at medium went over the budgets (README, Speed settings)
SPEED_WIENER_LAYOUTS = {"fast": 1, "medium": 1, "slow": 3}


# What --task sets (seed 003: fewer bits for the same task accuracy), besides the ROI finder
# (from --detector, else motion): each field is the task's unless asked by name. detect's was
# evaluated by leaving one clip out (benchmarks/task_generalise.py, models/README.md *Task-aware
# coding*), and is the best of its ten candidates on all six windows: the ROI at the stream's
# QP, the background 10 steps above it and low-passed by 2 (by 4: 0.4 points behind), no
# temporal scaling (TASK_STAGES_OFF). On 13 windows it is +1.6 % against x265, and no AV1
# candidate did better. segment and track take detect's until they are measured.
TASK_DETECT = {"background_scale": 2, "roi_qp_offset": 0, "background_qp_offset": 10}
# The stages --task turns off unless asked by name: temporal scaling replaces the frames it
# drops by their neighbours' mean (chosen on the frame's error, which a small moving object
# hardly moves), and a detector misses what the mean smears: highway's cars at qp 42 and up.
# Without it, pooled left-out, -3.9 % against x265 instead of +13.4 % (models/README.md).
TASK_STAGES_OFF = ("temporal",)
TASK_SETTINGS: dict[str, dict] = {
    "detect": TASK_DETECT,
    "segment": TASK_DETECT,
    "track": TASK_DETECT,
}
ROI_DEFAULTS = {  # with --roi and no --task
    "background_scale": 4,
    "roi_qp_offset": ROI_QP_OFFSET,
    "background_qp_offset": BACKGROUND_QP_OFFSET,
}


@dataclass(frozen=True)
class EncodeConfig:
    """Encoder settings; the CLI's options map one to one onto these fields."""

    qp: int = 32  # quality: higher = smaller, on x264's 0-51 scale
    base: str = AUTO_BASE  # base-layer codec: auto, x265, x264, av1
    # "1", "2", or "auto": the parameter module's choice for the stream, on its first GOP
    scale: str = "auto"
    preset: str = "medium"  # base-layer encoder preset
    # the base encoder's tuning (TUNES): None is psnr, or none with --roi / --task (their
    # settings were measured on the encoders' defaults, and x265's PSNR tuning turns its
    # adaptive quantisation down to zero strength)
    tune: str | None = None
    frames: int | None = None  # encode at most this many frames
    device: str = "auto"  # where the resampling/networks run: auto, cpu, cuda
    mode: str = "hybrid"  # hybrid: base layer + masked samples; pure: masked samples alone
    speed: str = "medium"  # fast, medium, slow: the stage set (SPEED_STAGES) and the search effort
    # Each stage switch: True/False as asked, None: as --speed says (resolved() fills it in)
    masks: bool | None = None  # hybrid only: send masked enhancement samples
    # MASK_SEARCHES: net (the selection network), exhaustive (RD search, the reference) or
    # fills (RD search on the reconstruction network's fills); None: fills in pure mode (the
    # network, trained on few pure crops, chose masks costing +62-67 % there), else net
    mask_search: str | None = None
    recon_model: str = RECON_MODEL  # the mask codec's reconstruction network (RECON_MODELS)
    post: bool | None = None  # hybrid only: the decoder runs the post-processing network
    post_model: str = POST_MODEL  # which one (POST_MODELS): post-task-v1 for detection
    # hybrid only: static GOPs drop frames from the base layer, which the decoder predicts
    temporal: bool | None = None
    # with --temporal: the decoder refines the dropped frames with predict-v1 (else their mean)
    predict_net: bool | None = None
    # with --temporal: moving GOPs may drop frames too, which the decoder interpolates along the
    # optical flow between their neighbours (not with masks: the flow is not bit-exact across
    # machines, and the samples are coded over the encoder's own prediction)
    flow: bool | None = None
    # hybrid only: per GOP and plane, a least-squares filter to the source where it pays
    wiener: bool | None = None
    # hybrid only: none, motion, yolo, nanodet: regions of interest steer the base layer
    roi: str = "none"
    roi_model: str | None = None  # --roi yolo / nanodet: the detector's weights
    # with --roi: the background is low-passed as a down- and up-scale by this factor would
    # leave it, before the base layer (seed 002's ROI downsampler; 1: left as it is)
    background_scale: int | None = None  # None: --task's choice, else ROI_DEFAULTS
    roi_qp_offset: int | None = None  # with --roi: the base layer's QP steps inside the ROI
    background_qp_offset: int | None = None  # ... and outside it
    # none, detect, segment, track: the machine task the stream is for (stored in the header);
    # it turns on the ROI stage with --detector's boxes (else motion) and TASK_SETTINGS
    task: str = "none"
    detector: str | None = None  # with --task: onnx-nanodet:PATH or ultralytics:PATH|NAME
    # the base encoder's threads per segment (0: its own default, every core); x265's bytes
    # depend on them, so equal threads give equal bytes whatever the number of workers
    threads: int = 0
    # the longest independent segment, in seconds (segments.py: cuts at scene changes too);
    # each segment is coded alone, its stages chosen on it
    segment_seconds: float = DEFAULT_SEGMENT_SECONDS

    def resolved(self) -> EncodeConfig:
        """This config with every stage switch left to --speed filled in from SPEED_STAGES (and
        BASE_STAGES_OFF, TASK_STAGES_OFF), and the mask search to --mode."""
        if self.speed not in SPEEDS:
            raise InputError(f"--speed must be one of {', '.join(SPEEDS)}, got {self.speed!r}")
        if self.base == AUTO_BASE:
            x265 = self.mode == "pure" or self.roi != "none" or self.task != "none"
            self = replace(self, base=STILL_BASE if x265 else AUTO_PICK)
        chosen = dict(SPEED_STAGES[self.speed])
        chosen |= {name: False for name in BASE_STAGES_OFF.get(self.base, ())}
        if self.task != "none":
            chosen |= {name: False for name in TASK_STAGES_OFF}
        if self.mask_search is None:
            chosen["mask_search"] = "fills" if self.mode == "pure" else "net"
        config = replace(self, **{k: v for k, v in chosen.items() if getattr(self, k) is None})
        return config._with_task()

    def _with_task(self) -> EncodeConfig:
        """--task's ROI finder and TASK_SETTINGS, the ROI stage's defaults and --tune's (psnr,
        none with regions of interest), filled in."""
        if self.task not in TASKS:
            raise InputError(f"--task must be one of {', '.join(TASKS)}, got {self.task!r}")
        if self.task == "none":
            if self.detector:
                raise InputError("--detector goes with --task (--roi takes --roi-model)")
            settings = ROI_DEFAULTS
        else:
            source, model = detector_roi(self.detector)
            if self.roi != "none" and (self.roi, self.roi_model) != (source, model):
                raise InputError("--task picks its ROI finder itself (--detector): leave out --roi")
            settings = ROI_DEFAULTS | TASK_SETTINGS[self.task]
            self = replace(self, roi=source, roi_model=model)
        if self.roi != "none" and not get_codec(self.base).roi:
            # SVT-AV1 takes no per-block QP through ffmpeg: the ROI stage only low-passes the
            # background there (and sends the map); offsets of 0 are what it does anyway
            if self.roi_qp_offset or self.background_qp_offset:
                raise InputError(
                    "--roi-qp-offset and --background-qp-offset need --base x264 or x265"
                )
            self = replace(self, roi_qp_offset=0, background_qp_offset=0)
        if self.tune is None:
            self = replace(self, tune="psnr" if self.roi == "none" else "none")
        return replace(self, **{k: v for k, v in settings.items() if getattr(self, k) is None})

    def validate(self) -> EncodeConfig:
        """The resolved config, or InputError naming the first option out of range."""
        self = self.resolved()
        if self.base not in BASES:
            raise InputError(f"--base must be one of {', '.join(BASES)}, got {self.base!r}")
        if not 0 <= self.qp <= 51:
            raise InputError(f"--qp must be between 0 and 51, got {self.qp}")
        if self.scale != "auto" and int(self.scale) not in SCALES:
            raise InputError(f"--scale must be auto or one of {SCALES}, got {self.scale}")
        if self.preset not in PRESETS:
            raise InputError(f"--preset must be one of {', '.join(PRESETS)}")
        if self.tune not in TUNES:
            raise InputError(f"--tune must be one of {', '.join(TUNES)}, got {self.tune!r}")
        if self.frames is not None and self.frames < 1:
            raise InputError(f"--frames must be at least 1, got {self.frames}")
        if self.mode not in MODES:
            raise InputError(f"--mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.mask_search not in MASK_SEARCHES:
            raise InputError(f"--mask-search must be one of {', '.join(MASK_SEARCHES)}")
        if self.recon_model not in RECON_MODELS:
            raise InputError(f"--recon-model must be one of {', '.join(RECON_MODELS)}")
        if self.roi not in ROI_SOURCES:
            raise InputError(f"--roi must be one of {', '.join(ROI_SOURCES)}, got {self.roi!r}")
        if self.roi != "none" and self.mode == "pure":
            what = "--task" if self.task != "none" else "--roi"
            raise InputError(f"{what} works on the base layer: it needs --mode hybrid")
        if self.roi in ("yolo", "nanodet") and not self.roi_model:
            raise InputError(f"--roi {self.roi} needs --roi-model PATH (its weights)")
        if self.post_model not in POST_MODELS:
            raise InputError(f"--post-model must be one of {', '.join(POST_MODELS)}")
        for option, offset in (
            ("--roi-qp-offset", self.roi_qp_offset),
            ("--background-qp-offset", self.background_qp_offset),
        ):
            if not -QP_RANGE <= offset <= QP_RANGE:
                raise InputError(
                    f"{option} must be between -{QP_RANGE} and {QP_RANGE}, got {offset}"
                )
        if self.background_scale not in BACKGROUND_SCALES:
            raise InputError(
                f"--background-scale must be one of {', '.join(map(str, BACKGROUND_SCALES))}"
            )
        if self.threads < 0:
            raise InputError(
                f"--threads must be 0 (the encoder's default) or more, got {self.threads}"
            )
        if not self.segment_seconds > 0:
            raise InputError(f"--segment-seconds must be positive, got {self.segment_seconds}")
        resolve_device(self.device)
        return self

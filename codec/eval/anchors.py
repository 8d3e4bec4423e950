"""The bench's codec names (codec:preset, vcx:speed) and its classical anchors (x264/x265/AV1)."""

from __future__ import annotations

import ctypes
import re
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vcodec.errors import InputError
from vcodec.frames import Gop
from vcodec.pipeline.config import SPEEDS, EncodeConfig
from vcodec.stages.base_layer import (
    BASE_CODECS,
    SVT_PRESET_RANGE,
    BaseDecoder,
    BaseEncoder,
    svt_preset,
)
from vcodec.stages.roi import qp_regions
from vcodec.stages.scale import coded_size, crop_gop, pad_gop

# vcx variants: the EncodeConfig fields each sets
VCX_VARIANTS: dict[str, dict] = {
    "vcx": {},
    "vcx-nomask": {"masks": False},
    "vcx-nopost": {"post": False},
    "vcx-post": {"post": True},  # post-v1, off by default at medium: what it would buy
    "vcx-post2": {"post": True, "post_model": "post-v2"},
    "vcx-notemporal": {"temporal": False},
    "vcx-noflow": {"flow": False},
    "vcx-flow": {"flow": True},  # the option off by default: what it would buy
    "vcx-nowiener": {"wiener": False},
    "vcx-wiener": {"wiener": True},  # on a base where it is off by default (BASE_STAGES_OFF)
    "vcx-temporal": {"temporal": True},  # the same for temporal scaling
    "vcx-x265": {"base": "x265"},  # --base auto's two choices, each for every clip
    "vcx-av1": {"base": "av1"},
    "vcx-notune": {"tune": "none"},  # the base encoder's defaults instead of --tune psnr
    "vcx-noparams": {"scale": "1"},
    "vcx-s2": {"scale": "2"},
    "vcx-exhaustive": {"mask_search": "exhaustive"},
    "vcx-roi": {"roi": "motion"},
    "vcx-roi-sharp": {"roi": "motion", "background_scale": 1},
    "vcx-roi-task": {"roi": "motion", "post_model": "post-task-v1"},
    "vcx-pure": {"mode": "pure"},
    # pure mode as before recon-v2: recon-v1 and the selection network
    "vcx-pure-recon1": {"mode": "pure", "recon_model": "recon-v1", "mask_search": "net"},
    # --task (the bench's, else detect) with the maps' detector: what `vcodec encode --task` makes
    "vcx-task": {"task": "detect"},
}
CLASSICAL = ("x264", "x265", "av1")  # each at any of its presets: x265:slow, av1:6
# x264 with the same ROI maps and QP offsets as vcx-roi (ffmpeg's ROI side data, as `addroi`)
ROI_ANCHORS = ("x264-roi",)
# x264/x265 with --tune psnr, as vcx's base layer runs them: the tuning's own share of vcx's gain
TUNED_ANCHORS = ("x264-psnr", "x265-psnr")
FAMILIES = (*VCX_VARIANTS, *CLASSICAL, *ROI_ANCHORS, *TUNED_ANCHORS)
# the preset names x264 and x265 take (SVT-AV1's are the numbers of SVT_PRESET_RANGE)
X26X_PRESETS = (
    "ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
    "veryslow", "placebo",
)  # fmt: skip
DEFAULT_SPEED = EncodeConfig().speed  # plain `vcx` runs at the encoder's default --speed
MAP_REFERENCE = "x265"  # the speed/size map's BD-rates are against x265 at the bench's preset


@dataclass(frozen=True)
class CodecName:
    """A --codecs name split: the codec (a vcx variant or a classical codec) and its setting
    (vcx: the --speed; classical: the encoder preset), None for the bench's default."""

    family: str
    setting: str | None = None

    @property
    def name(self) -> str:
        return self.family if self.setting is None else f"{self.family}:{self.setting}"

    @property
    def vcx(self) -> bool:
        return self.family in VCX_VARIANTS

    def preset(self, bench_preset: str) -> str:
        """The classical encoder's preset: its own, else the bench's (SVT-AV1: as a number)."""
        preset = self.setting or bench_preset
        return str(svt_preset(preset)) if self.family == "av1" else preset

    def speed(self) -> str:
        return self.setting or DEFAULT_SPEED


def base_of(family: str) -> str:
    """The classical codec under an anchor's name: x264 for x264-roi, x265 for x265-psnr."""
    return family.removesuffix("-roi").removesuffix("-psnr")


def parse_codec(text: str, bench_preset: str) -> CodecName:
    """``text`` as a CodecName, with the bench's default setting dropped (`x265:medium` under
    --preset medium is `x265`, `av1:8` is `av1`, `vcx:medium` is `vcx`), or InputError."""
    family, _, setting = text.strip().partition(":")
    if family not in FAMILIES:
        raise InputError(
            f"unknown codec {text!r}; choose from {', '.join(FAMILIES)}, as NAME or "
            "NAME:PRESET (x264/x265: a preset name; av1: 0-13) or vcx...:SPEED (fast, medium, slow)"
        )
    if not setting and ":" not in text:
        return CodecName(family)
    if family in VCX_VARIANTS:
        if setting not in SPEEDS:
            raise InputError(f"{text!r}: a vcx speed is one of {', '.join(SPEEDS)}")
        return CodecName(family, None if setting == DEFAULT_SPEED else setting)
    if family == "av1":
        if not setting.isdigit() or int(setting) not in SVT_PRESET_RANGE:
            raise InputError(f"{text!r}: an SVT-AV1 preset is a number from 0 to 13")
        same = int(setting) == svt_preset(bench_preset)
        return CodecName(family, None if same else str(int(setting)))
    if setting not in X26X_PRESETS:
        raise InputError(f"{text!r}: an x264/x265 preset is one of {', '.join(X26X_PRESETS)}")
    return CodecName(family, None if setting == bench_preset else setting)


def run_anchor(clip, codec: CodecName, qp: int, bench_preset: str):
    """The bare codec at CRF = qp (SVT-AV1: stretched to its 0-63 scale), full resolution
    (padded to even size, cropped back): (decoded GOPs, bytes, encode s, decode s). The rate
    is the packets' bytes: AV1's sequence header included (stream_bytes)."""
    h, w = coded_size(clip.info.height, clip.info.width, 1)
    roi = codec.family in ROI_ANCHORS
    base, tune = base_of(codec.family), "psnr" if codec.family in TUNED_ANCHORS else "none"
    start = time.perf_counter()
    encoder = BaseEncoder(base, w, h, clip.info.fps, qp, codec.preset(bench_preset), roi, tune=tune)
    packets = [
        p
        for index, gop in enumerate(clip.gops)
        for p in encoder.encode(
            pad_gop(gop, h, w), qp_regions(clip.rois[index], 1, w, h) if roi else None
        )
    ]
    packets += encoder.flush()
    enc_s = time.perf_counter() - start
    start = time.perf_counter()
    decoder = BaseDecoder(base, encoder.extradata)
    frames = decoder.decode(b"".join(packets)) + decoder.flush()
    decoded = []
    for gop in clip.gops:
        part, frames = frames[: gop.n_frames], frames[gop.n_frames :]
        padded = Gop.from_frames(part, gop.start)
        decoded.append(crop_gop(padded, clip.info.height, clip.info.width))
    n_bytes = stream_bytes(base, packets, encoder.extradata)
    return decoded, n_bytes, enc_s, time.perf_counter() - start


OBU_SEQUENCE_HEADER = 1  # AV1's obu_type of the sequence header


def av1_obu_types(packet: bytes) -> list[int]:
    """The obu_type of each OBU in an AV1 packet (low-overhead format: every OBU has a size)."""
    types, pos = [], 0
    while pos < len(packet):
        header = packet[pos]
        pos += 2 if header & 0x04 else 1  # obu_extension_flag: one more header byte
        if not header & 0x02:  # no obu_size: the OBU runs to the end of the packet
            return [*types, (header >> 3) & 0x0F]
        size, shift = 0, 0
        while pos < len(packet):
            byte = packet[pos]
            pos, size, shift = pos + 1, size | (byte & 0x7F) << shift, shift + 7
            if byte < 0x80:
                break
        types.append((header >> 3) & 0x0F)
        pos += size
    return types


def stream_bytes(codec: str, packets: list[bytes], extradata: bytes = b"") -> int:
    """What a decoder needs: the packets' bytes, plus the codec's global header (AV1's
    sequence header) when it is out of band rather than in the first packet."""
    total = sum(len(p) for p in packets)
    if codec == "av1" and packets and OBU_SEQUENCE_HEADER not in av1_obu_types(packets[0]):
        total += len(extradata)
    return total


def anchor_settings(codec: CodecName, bench_preset: str) -> dict:
    """How bench.json describes a classical anchor."""
    base = base_of(codec.family)
    return {
        "encoder": BASE_CODECS[base].encoder,
        "version": encoder_version(base),
        "preset": codec.preset(bench_preset),
        "tune": "psnr" if codec.family in TUNED_ANCHORS else "encoder default",
        "rate_control": "crf = qp" if base != "av1" else "crf = round(qp * 63 / 51)",
        "gop": "encoder default",
    }


def encoder_version(codec: str) -> str:
    """The encoder's own version: x264/x265 from the SEI they write into their first packet,
    SVT-AV1 from its library (the one PyAV loaded)."""
    if codec == "av1":
        return svt_av1_version()
    encoder = BaseEncoder(codec, 64, 64, Fraction(25), 32, "ultrafast", info=True)
    gop = Gop.from_frames(
        [(np.zeros((64, 64), np.uint8),) + (np.full((32, 32), 128, np.uint8),) * 2]
    )
    data = b"".join(encoder.encode(gop) + encoder.flush())
    match = re.search(rb"(x26[45][^\x00]{0,40}?)(?: - |\x00)", data)
    return match.group(1).decode("ascii", "replace").strip() if match else "unknown"


def svt_av1_version() -> str:
    """SVT-AV1's version (svt_av1_get_version() of the library in PyAV's wheel), if found."""
    for lib in sorted((Path(av.__file__).parent.parent / "av.libs").glob("libSvtAv1Enc*")):
        try:
            get = ctypes.CDLL(str(lib)).svt_av1_get_version
        except (OSError, AttributeError):
            continue
        get.restype = ctypes.c_char_p
        return f"SVT-AV1 {get().decode('ascii', 'replace')}"
    return "SVT-AV1 (version unknown)"

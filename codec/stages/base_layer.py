"""The legacy-codec base layer through PyAV: x265 (default), x264 or AV1 encoders and decoders.

The same encoder runs the bench's x264/x265 anchors, so vcx and its anchors are coded by one
piece of code with the same preset.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from fractions import Fraction

import av

from vcodec.errors import InputError, MalformedError
from vcodec.frames import Gop
from vcodec.io import frame_from_planes, planes_from_frame

os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its banner to stderr unless told not to


QpRegion = tuple[int, int, int, int, Fraction]  # x, y, w, h in pixels; qoffset / QP_RANGE


@dataclass(frozen=True)
class BaseCodec:
    """One legacy codec: its PyAV encoder and decoder names, and how --qp maps onto it."""

    name: str
    encoder: str
    decoder: str
    max_crf: int
    roi: bool  # whether ffmpeg's wrapper takes ROI QP offsets (x264, x265; not SVT-AV1)

    def crf(self, qp: int) -> int:
        """--qp is on x264's 0-51 scale; AV1's CRF runs 0-63, so it is stretched."""
        return max(0, min(self.max_crf, round(qp * self.max_crf / 51)))

    def options(
        self,
        qp: int,
        preset: str,
        roi: bool = False,
        tune: str = "none",
        threads: int = 0,
        keyint: int = 0,
    ) -> dict[str, str]:
        """``roi``: the frames will carry ROI QP offsets, which x265 takes only with AQ on.
        ``tune``: psnr (x264/x265's own --tune psnr: no psycho-visual rate-distortion, adaptive
        quantisation at zero strength) or none (the encoder's defaults). SVT-AV1's default
        already aims at PSNR, so it takes none. ``threads`` (0: the encoder's default): x265's
        thread pool and SVT-AV1's level of parallelism (x264 takes the context's count).
        ``keyint`` (0: the encoder's default): the longest keyframe interval, in frames."""
        crf = str(self.crf(qp))
        if self.name == "av1":
            options = {"crf": crf, "preset": str(svt_preset(preset))}
            params = [f"lp={threads}"] * bool(threads) + [f"keyint={keyint}"] * bool(keyint)
            if params:
                options["svtav1-params"] = ":".join(params)
            return options
        options = {"crf": crf, "preset": preset}
        if tune == "psnr":
            options["tune"] = "psnr"
        if self.name == "x265":
            params = "log-level=error" + (f":pools={threads}" if threads else "")
            params += f":keyint={keyint}" if keyint else ""
            # (x265 applies the offsets per 32x32 quantisation group; qg-size=16 followed the
            # 16x16 map more closely but lost ROI-PSNR at equal rate: bikes +1.26 against
            # +1.65 dB, intel_car +2.31 against +2.60 dB, masks and post off)
            if roi and preset in X265_PRESETS_WITHOUT_AQ:  # AQ on, at zero strength
                params += ":aq-mode=1:aq-strength=0"
            options["x265-params"] = params
        return options


BASE_CODECS = {
    "x265": BaseCodec("x265", "libx265", "hevc", 51, True),
    "x264": BaseCodec("x264", "libx264", "h264", 51, True),
    "av1": BaseCodec("av1", "libsvtav1", "libdav1d", 63, False),
}
TUNES = ("psnr", "none")  # --tune: the base encoder's tuning (BaseCodec.options)
# x264/x265 preset names mapped onto SVT-AV1's numeric presets (0 slowest .. 13 fastest)
SVT_PRESETS = {
    "veryslow": 2, "slower": 3, "slow": 5, "medium": 8, "fast": 10, "faster": 11,
    "veryfast": 12, "superfast": 13, "ultrafast": 13,
}  # fmt: skip
SVT_PRESET_RANGE = range(14)
# x265's presets that turn adaptive quantisation off: its ROI offsets would be ignored
X265_PRESETS_WITHOUT_AQ = ("ultrafast", "superfast")
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower")


def svt_preset(preset: str) -> int:
    """SVT-AV1's numeric preset for an x264 preset name, or for its own number ("0" .. "13")."""
    if preset.isdigit() and int(preset) in SVT_PRESET_RANGE:
        return int(preset)
    return SVT_PRESETS.get(preset, SVT_PRESETS["medium"])


def get_codec(name: str) -> BaseCodec:
    try:
        return BASE_CODECS[name]
    except KeyError:
        raise InputError(f"unknown base codec {name!r}; choose {', '.join(BASE_CODECS)}") from None


class BaseEncoder:
    """Encodes GOPs of one fixed size into packets (bytes, in decode order)."""

    def __init__(
        self,
        codec: str,
        width: int,
        height: int,
        fps: Fraction,
        qp: int,
        preset: str = "medium",
        roi: bool = False,
        info: bool = False,
        tune: str = "none",
        threads: int = 0,
        keyint: int = 0,
    ) -> None:
        """``roi``: frames will come with QP regions (encode's ``regions``). ``tune``: as
        BaseCodec.options. ``info``: keep the SEI in which x264/x265 describe themselves
        (version and every option, 0.6-2.3 KB at each encoder start); without it the packets
        carry only what a decoder needs. ``threads``: the encoder's threads (0: its
        default); x265's bytes depend on them. ``keyint``: the most frames from one keyframe
        to the next (0: the encoder's default; SVT-AV1's is about 5 s)."""
        self.codec = get_codec(codec)
        self.info = info
        self._ctx = av.CodecContext.create(self.codec.encoder, "w")
        self._ctx.width, self._ctx.height = width, height
        self._ctx.pix_fmt = "yuv420p"
        self._ctx.time_base = 1 / Fraction(fps)
        self._ctx.framerate = Fraction(fps)
        self.roi = roi and self.codec.roi  # SVT-AV1 takes no ROI: its regions are dropped
        self._ctx.options = self.codec.options(qp, preset, self.roi, tune, threads, keyint)
        if threads:
            self._ctx.thread_count = threads
        if keyint and self.codec.name == "x264":
            self._ctx.gop_size = keyint
        self._ctx.open()  # now, not at the first frame, so `extradata` is what the codec says
        self._pts = 0

    @property
    def extradata(self) -> bytes:
        return bytes(self._ctx.extradata or b"")

    def encode(self, gop: Gop, regions: list[QpRegion] | None = None) -> list[bytes]:
        """The GOP's packets so far; ``regions``: QP offsets for its frames, dropped unless
        the encoder was opened with ``roi`` on a codec that takes them (x264/x265).

        An encoder opened with ``roi`` gives every frame ROI side data, a zero offset over the
        whole frame where there are no regions: libx265 allocates a frame's offset buffer only
        if its first picture had offsets, and crashes when it reuses that frame for a picture
        with offsets (seen on dance: a GOP without regions, then one with)."""
        if not self.roi:
            regions = None
        elif not regions:
            regions = [(0, 0, gop.width, gop.height, Fraction(0))]
        graph = _roi_graph(regions, gop.width, gop.height, self._ctx.time_base) if regions else None
        packets: list[bytes] = []
        for t in range(gop.n_frames):
            frame = frame_from_planes(gop.y[t], gop.u[t], gop.v[t])
            if graph is not None:
                graph.push(frame)
                frame = graph.pull()  # the same picture, with ROI side data attached
            frame.pts = self._pts
            self._pts += 1
            packets += self._packets(frame)
        return packets

    def flush(self) -> list[bytes]:
        return self._packets(None)

    def _packets(self, frame: av.VideoFrame | None) -> list[bytes]:
        packets = [bytes(p) for p in self._ctx.encode(frame)]
        if self.info or self.codec.name == "av1":
            return packets
        return [drop_encoder_info(p, self.codec.name) for p in packets]


def drop_encoder_info(packet: bytes, codec: str) -> bytes:
    """The Annex B packet without the SEI NAL units that hold nothing but user data
    unregistered (payload type 5): x264 and x265 write their version and options there, and no
    decoder needs them. Any other SEI is kept."""
    starts = [m.start() for m in re.finditer(b"\x00\x00\x01", packet)]
    if not starts:
        return packet
    kept = [packet[: starts[0]]]
    for start, end in zip(starts, starts[1:] + [len(packet)], strict=True):
        nal = packet[start + 3 : end]
        if not _is_info_sei(nal, codec):
            kept.append(packet[start:end])
    return b"".join(kept)


def _is_info_sei(nal: bytes, codec: str) -> bool:
    """Whether ``nal`` (without its start code) is an SEI of user-data-unregistered messages."""
    if codec == "x264":
        is_sei, header = len(nal) > 1 and nal[0] & 0x1F == 6, 1
    else:  # x265: prefix SEI
        is_sei, header = len(nal) > 2 and (nal[0] >> 1) & 0x3F == 39, 2
    if not is_sei:
        return False
    rbsp = re.sub(b"\x00\x00\x03", b"\x00\x00", nal[header:]).rstrip(b"\x00")
    pos = 0
    while pos < len(rbsp) - 1:  # the last byte is rbsp_trailing_bits (0x80)
        kind, pos = _sei_number(rbsp, pos)
        size, pos = _sei_number(rbsp, pos)
        if kind != 5:
            return False
        pos += size
    return pos == len(rbsp) - 1 and rbsp[-1] == 0x80


def _sei_number(data: bytes, pos: int) -> tuple[int, int]:
    """An SEI payload type or size: 0xFF bytes each add 255, the first other byte ends it."""
    value = 0
    while pos < len(data) and data[pos] == 0xFF:
        value, pos = value + 255, pos + 1
    if pos >= len(data):
        return -1, pos
    return value + data[pos], pos + 1


def _roi_graph(
    regions: list[QpRegion], width: int, height: int, time_base: Fraction
) -> av.filter.Graph:
    """A filter graph that attaches the regions to each frame as ffmpeg ROI side data (one
    ``addroi`` per region), which libx264 and libx265 turn into per-block QP offsets. Its
    frames come out in the encoder's ``time_base``: in another one PyAV rescales their
    timestamps, and libx264's rate control gives frames that seem to last longer more bits
    (a time base of 1 s made x264 streams 7x larger at zero offsets)."""
    graph = av.filter.Graph()
    node = graph.add_buffer(width=width, height=height, format="yuv420p", time_base=time_base)
    for x, y, w, h, offset in regions:
        roi = graph.add("addroi", f"x={x}:y={y}:w={w}:h={h}:qoffset={offset}")
        node.link_to(roi)
        node = roi
    sink = graph.add("buffersink")
    node.link_to(sink)
    graph.configure()
    return graph


class BaseDecoder:
    """Decodes the base layer's elementary stream, fed in pieces of any size, into (y, u, v)
    frames in display order. The codec's own parser finds the packet boundaries (Annex B
    start codes for H.264/H.265, OBU headers for AV1), so the stream stores no packet sizes."""

    def __init__(
        self, codec: str, extradata: bytes = b"", size: tuple[int, int] | None = None
    ) -> None:
        """``size`` (width, height): what every frame must be (a SEGMENT's coded size); a
        frame of another size is MalformedError before it becomes an array."""
        name = get_codec(codec).decoder
        self._parser = av.CodecContext.create(name, "r")
        self._ctx = av.CodecContext.create(name, "r")
        self._size = size
        if extradata:
            self._ctx.extradata = extradata

    def decode(self, data: bytes) -> list[tuple]:
        return self._run(data)

    def flush(self) -> list[tuple]:
        return self._run(None)

    def _run(self, data: bytes | None) -> list[tuple]:
        out = []
        try:
            for packet in [*self._parser.parse(data), *([None] if data is None else [])]:
                for frame in self._ctx.decode(packet):
                    self._check(frame)
                    out.append(planes_from_frame(frame))
        except av.error.FFmpegError as exc:
            raise MalformedError(f"base layer does not decode: {exc}") from exc
        return out

    def _check(self, frame: av.VideoFrame) -> None:
        if self._size is not None and (frame.width, frame.height) != self._size:
            w, h = self._size
            size = f"{frame.width}x{frame.height}"
            raise MalformedError(f"the base layer's frames are {size}, its SEGMENT says {w}x{h}")

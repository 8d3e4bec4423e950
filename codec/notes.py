"""What reading an input changed or found (converted pixels, variable frame rate, truncation)."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import av

from vcodec.frames import VideoInfo

NATIVE_FORMATS = ("yuv420p", "yuvj420p")  # 8-bit 4:2:0: read as it is
# frame intervals that differ by more than this share of the shortest one (and by more than
# two ticks of the time base, which rounding alone makes) are a variable frame rate
VFR_TOLERANCE = 0.1
ROUNDING_TICKS = 2


@dataclass
class ReadLog:
    """One pass over an input: frames, their pixel formats and timestamps, the packets that
    did not decode, and whether it reached the input's end."""

    timed: bool = True  # frames carry timestamps (a container, not a folder of images)
    frames: int = 0
    formats: dict[str, int] = field(default_factory=dict)  # pixel format -> frames
    pts: list[int] = field(default_factory=list)  # the frames' timestamps, as decoded
    time_base: Fraction | None = None
    broken_packets: int = 0
    read_error: str | None = None  # why demuxing stopped before the end of the file
    ended: bool = False  # the input ran out (the pass was not cut short by --frames)

    def add(self, frame: av.VideoFrame) -> None:
        self.frames += 1
        name = frame.format.name
        self.formats[name] = self.formats.get(name, 0) + 1
        if not self.timed or frame.pts is None:
            return
        if not self.pts:
            self.time_base = frame.time_base
        self.pts.append(frame.pts)

    def to_json(self) -> dict:
        """The log as JSON values (a resumed encode's notes count the windows it kept)."""
        out = dict(vars(self))
        out["time_base"] = None if self.time_base is None else str(self.time_base)
        return out

    @classmethod
    def from_json(cls, data: dict) -> ReadLog:
        log = cls(**data)
        log.time_base = None if log.time_base is None else Fraction(log.time_base)
        return log

    @classmethod
    def joined(cls, logs: list[ReadLog]) -> ReadLog:
        """One log of an input read in stretches (each a log of its own), in order."""
        log = cls()
        for part in logs:
            log.timed = log.timed and part.timed
            log.frames += part.frames
            for name, count in part.formats.items():
                log.formats[name] = log.formats.get(name, 0) + count
            log.pts += part.pts
            log.time_base = log.time_base or part.time_base
            log.broken_packets += part.broken_packets
            log.read_error = log.read_error or part.read_error
        return log

    @property
    def steps(self) -> tuple[int, int] | None:
        """The shortest and longest interval between frames in presentation order (the
        decoder's order of timestamps is the demuxer's: an AVI's are its decode order)."""
        pts = sorted(self.pts)
        steps = [b - a for a, b in zip(pts, pts[1:], strict=False)]
        return (min(steps), max(steps)) if steps else None

    def notes(self, info: VideoInfo) -> list[str]:
        """One line for each thing the user should know about this pass."""
        notes = [self._conversion(name) for name in self.formats if name not in NATIVE_FORMATS]
        notes += [n for n in (self._variable_rate(info.fps), self._truncation(info)) if n]
        return notes

    def _conversion(self, name: str) -> str:
        fmt = av.VideoFormat(name)
        bits = max(c.bits for c in fmt.components)
        parts = [f"{bits}-bit"] if bits != 8 else []
        if fmt.is_rgb or fmt.has_palette:
            parts.append("RGB, converted with the BT.601 matrix to limited range")
        elif len(fmt.components) <= 2:
            parts.append("grey, given neutral chroma")
        else:
            sub = {1: "4:4:4", 2: "4:2:2" if fmt.chroma_height(64) == 64 else "4:2:0"}
            parts.append(f"{sub.get(64 // fmt.chroma_width(64), 'subsampled')} chroma")
        if any(c.is_alpha for c in fmt.components):
            parts.append("alpha dropped")
        frames = self.formats[name]
        return (
            f"{frames} frames of the input are {name} ({', '.join(parts)}); they were "
            "converted to 8-bit YUV 4:2:0"
        )

    def _variable_rate(self, fps: Fraction) -> str | None:
        if self.steps is None or self.time_base is None:
            return None
        low, high = self.steps
        first, last = min(self.pts), max(self.pts)
        if low > 0 and high - low <= max(ROUNDING_TICKS, VFR_TOLERANCE * low):
            return None
        tb = self.time_base
        span = float((last - first + high) * tb)
        return (
            f"the input has a variable frame rate (frames {1000 * float(low * tb):.1f} to "
            f"{1000 * float(high * tb):.1f} ms apart, {span:.2f} s in all): its "
            f"{self.frames} frames were given a constant {_rate(fps)} fps "
            f"({float(self.frames / fps):.2f} s), none dropped or repeated"
        )

    def _truncation(self, info: VideoInfo) -> str | None:
        parts = []
        if self.broken_packets:
            parts.append(f"{self.broken_packets} packets did not decode and were skipped")
        if self.read_error:
            parts.append(f"reading stopped after {self.frames} frames ({self.read_error})")
        stated = info.frame_count
        if self.ended and stated and self.frames < stated:
            parts.append(f"it says {stated} frames, {self.frames} could be decoded")
        if not parts:
            return None
        return f"the input is truncated or damaged: {'; '.join(parts)}"


def _rate(fps: Fraction) -> str:
    fps = Fraction(fps)
    return str(fps.numerator) if fps.denominator == 1 else f"{fps} ({float(fps):.3f})"

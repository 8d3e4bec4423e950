"""The built-in sample clip: scikit-image photos under a panning, zooming camera, as YUV 4:2:0."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as F
from skimage import data as skdata

from vcodec.frames import COLOR_RANGE_TV, GOP_SIZE, Gop, VideoInfo

SMPTE170M = 6  # ffmpeg's enum value of BT.601 525-line for colorspace, primaries and transfer

# BT.601 luma weights and limited ("tv") range: Y' in [16, 235], Cb/Cr in [16, 240]
KR, KB = 0.299, 0.114
KG = 1.0 - KR - KB
LUMA_OFFSET, LUMA_SPAN = 16.0, 219.0  # 8-bit code values
CHROMA_OFFSET, CHROMA_SPAN = 128.0, 224.0  # 8-bit code values

# The camera over the background photo (rocket.jpg, 640x427): all motion is periodic in time.
ZOOM_MEAN = 0.7  # crop side / the largest crop of the frame's aspect that fits the photo
ZOOM_SWING = 0.1  # +- around ZOOM_MEAN
ZOOM_PERIOD_S = 3.0  # seconds
PAN_X_PERIOD_S = 8.0  # seconds; the camera starts at the left and pans right
PAN_Y_PERIOD_S = 6.0  # seconds
PAN_USE = 0.9  # fraction of the room left by the crop that the pan may use

# The sprite (the cat's face from chelsea.png) and its path, in frame heights and seconds.
SPRITE_BOX = (slice(10, 290), slice(40, 400))  # rows, cols of chelsea.png
SPRITE_HEIGHT = 0.42  # of the frame height
SPRITE_EDGE = 0.15  # width of the soft alpha edge, as a fraction of the ellipse radius
SPRITE_PATH_X = 0.35  # amplitude of the horizontal swing, in frame widths
SPRITE_PATH_Y = 0.22  # amplitude of the vertical swing, in frame heights
SPRITE_PERIOD_S = 4.0  # seconds: left to right and back; the vertical swing runs twice as fast
SPRITE_TILT_DEG = 12.0  # degrees of rocking rotation
SPRITE_TILT_PERIOD_S = 1.6  # seconds


def _load_photos() -> tuple[torch.Tensor, torch.Tensor]:
    """Background [1, 3, Hb, Wb] RGB and sprite [1, 4, Hs, Ws] RGBA, float32 in [0, 1]."""
    background = torch.from_numpy(skdata.rocket()).permute(2, 0, 1)[None].float() / 255.0
    cat = torch.from_numpy(skdata.chelsea()[SPRITE_BOX]).permute(2, 0, 1)[None].float() / 255.0
    h, w = cat.shape[2:]
    yy = torch.linspace(-1.0, 1.0, h)[:, None]
    xx = torch.linspace(-1.0, 1.0, w)[None, :]
    radius = torch.sqrt(xx * xx + yy * yy)  # 1 on the ellipse touching the box
    alpha = ((1.0 - radius) / SPRITE_EDGE).clamp(0.0, 1.0)
    alpha = alpha * alpha * (3.0 - 2.0 * alpha)  # smoothstep: a soft edge
    return background, torch.cat([cat, alpha[None, None]], dim=1)


def _resize(image: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Antialiased bilinear resize of [1, C, H, W]."""
    return F.interpolate(image, size=(height, width), mode="bilinear", antialias=True)


def _fit(height: int, width: int, bg_hw: tuple[int, int]) -> tuple[float, float]:
    """Width, height (fractions of the background) of its largest crop of the frame's aspect."""
    bg_h, bg_w = bg_hw
    return min(1.0, (bg_h * width) / (height * bg_w)), min(1.0, (bg_w * height) / (width * bg_h))


def _pixel_centres(n: int) -> torch.Tensor:
    """Normalised coordinates (-1..1, align_corners=False) of n pixel centres: [n]."""
    return (2.0 * torch.arange(n, dtype=torch.float32) + 1.0) / n - 1.0


def _camera_grid(
    times: torch.Tensor, height: int, width: int, bg_hw: tuple[int, int]
) -> torch.Tensor:
    """Where each pixel of each frame looks in the background: grid [T, H, W, 2] (pan, zoom)."""
    fit_x, fit_y = _fit(height, width, bg_hw)
    zoom = ZOOM_MEAN + ZOOM_SWING * torch.sin(2 * math.pi * times / ZOOM_PERIOD_S)
    sx, sy = zoom * fit_x, zoom * fit_y
    tx = PAN_USE * (1.0 - sx) * -torch.cos(2 * math.pi * times / PAN_X_PERIOD_S)
    ty = PAN_USE * (1.0 - sy) * torch.sin(2 * math.pi * times / PAN_Y_PERIOD_S)
    grid = torch.empty(len(times), height, width, 2)
    grid[..., 0] = (sx[:, None] * _pixel_centres(width) + tx[:, None])[:, None, :]
    grid[..., 1] = (sy[:, None] * _pixel_centres(height) + ty[:, None])[:, :, None]
    return grid


def _sprite_pose(time_s: float, height: int, width: int) -> tuple[float, float, float]:
    """Sprite centre (x, y in pixels from the frame centre) and tilt (radians) at a time."""
    phase = 2 * math.pi * time_s / SPRITE_PERIOD_S
    tilt = math.radians(SPRITE_TILT_DEG * math.sin(2 * math.pi * time_s / SPRITE_TILT_PERIOD_S))
    return (
        -SPRITE_PATH_X * width * math.cos(phase),
        SPRITE_PATH_Y * height * math.sin(2 * phase),
        tilt,
    )


def _paste_sprite(
    frame: torch.Tensor, sprite: torch.Tensor, pose: tuple[float, float, float]
) -> None:
    """Blend the RGBA sprite [1, 4, h, w] over frame [3, H, W] in place, at a sub-pixel pose.

    Only the sprite's bounding box is sampled.
    """
    _, height, width = frame.shape
    sh, sw = sprite.shape[2:]
    cx, cy, tilt = pose
    cos, sin = math.cos(tilt), math.sin(tilt)
    ex = abs(cos) * sw / 2 + abs(sin) * sh / 2 + 1  # half extent of the rotated box, pixels
    ey = abs(sin) * sw / 2 + abs(cos) * sh / 2 + 1
    x0, x1 = max(0, math.floor(width / 2 + cx - ex)), min(width, math.ceil(width / 2 + cx + ex))
    y0, y1 = max(0, math.floor(height / 2 + cy - ey)), min(height, math.ceil(height / 2 + cy + ey))
    if x0 >= x1 or y0 >= y1:
        return
    dx = (torch.arange(x0, x1, dtype=torch.float32) + 0.5 - width / 2 - cx)[None, :]
    dy = (torch.arange(y0, y1, dtype=torch.float32) + 0.5 - height / 2 - cy)[:, None]
    grid = torch.empty(1, y1 - y0, x1 - x0, 2)
    grid[0, ..., 0] = (cos * dx + sin * dy) / (sw / 2)
    grid[0, ..., 1] = (-sin * dx + cos * dy) / (sh / 2)
    fg = F.grid_sample(sprite, grid, "bilinear", "zeros", align_corners=False)[0]
    frame[:, y0:y1, x0:x1].lerp_(fg[:3], fg[3:])


def render_rgb(width: int, height: int, frames: int, fps: Fraction) -> np.ndarray:
    """The sample clip in RGB: float32 [T, H, W, 3] in [0, 1] (a view of planar memory)."""
    background, sprite = _load_photos()
    times = torch.arange(frames, dtype=torch.float32) / float(fps)
    # Keep the camera's crop at least as large as the frame, so grid_sample never minifies.
    fit_x, _ = _fit(height, width, background.shape[2:])
    bg_scale = width / ((ZOOM_MEAN - ZOOM_SWING) * fit_x * background.shape[3])
    if bg_scale < 1.0:
        bg_hw = (round(background.shape[2] * bg_scale), round(background.shape[3] * bg_scale))
        background = _resize(background, *bg_hw)
    sprite_h = max(2, round(SPRITE_HEIGHT * height))
    sprite_w = max(2, round(sprite_h * sprite.shape[3] / sprite.shape[2]))
    sprite = _resize(sprite, sprite_h, sprite_w)

    grid = _camera_grid(times, height, width, background.shape[2:])
    rgb = F.grid_sample(background.expand(frames, -1, -1, -1), grid, "bicubic", "border", False)
    rgb.clamp_(0.0, 1.0)  # bicubic overshoots
    for index, time_s in enumerate(times.tolist()):
        _paste_sprite(rgb[index], sprite, _sprite_pose(time_s, height, width))
    return rgb.permute(0, 2, 3, 1).numpy()


def _halve(plane: np.ndarray) -> np.ndarray:
    """2x2 average of [T, H, W], the edge repeated when a side is odd: [T, ceil(H/2), ceil(W/2)]."""
    _, h, w = plane.shape
    plane = np.pad(plane, ((0, 0), (0, h % 2), (0, w % 2)), mode="edge")
    return 0.25 * (
        plane[:, 0::2, 0::2] + plane[:, 1::2, 0::2] + plane[:, 0::2, 1::2] + plane[:, 1::2, 1::2]
    )


def rgb_to_yuv420(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """RGB [T, H, W, 3] in [0, 1] to 8-bit YUV 4:2:0 planes, BT.601 limited range.

    Y' = 16 + 219 (0.299 R + 0.587 G + 0.114 B)
    Cb = 128 + 224 (B - Y'n) / 1.772,  Cr = 128 + 224 (R - Y'n) / 1.402   (Y'n: Y' in 0..1)
    Chroma is computed at full resolution, then averaged over 2x2 blocks.
    """
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    luma = KR * r + KG * g + KB * b
    cb = _halve((b - luma) / (2.0 * (1.0 - KB)))
    cr = _halve((r - luma) / (2.0 * (1.0 - KR)))

    def to_u8(x: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(x), 0, 255).astype(np.uint8)

    return (
        to_u8(LUMA_OFFSET + LUMA_SPAN * luma),
        to_u8(CHROMA_OFFSET + CHROMA_SPAN * cb),
        to_u8(CHROMA_OFFSET + CHROMA_SPAN * cr),
    )


def make_sample(
    width: int = 640,
    height: int = 360,
    frames: int = 50,
    fps: Fraction = Fraction(25),
    gop_size: int = GOP_SIZE,
) -> tuple[VideoInfo, list[Gop]]:
    """The built-in sample clip (2 s at the defaults), deterministic, needing no download.

    A camera pans and zooms smoothly (sub-pixel) over skimage's rocket photo (flat sky, fine
    lattice texture) while a soft-edged cut-out of chelsea's face swings along a curve and rocks:
    global motion, local motion, texture and flat areas. Returns the stream facts (BT.601
    limited range) and the frames split into GOPs of gop_size (the last one may be shorter).
    """
    if width < 2 or height < 2 or frames < 1 or gop_size < 1 or fps <= 0:
        raise ValueError(f"bad sample size {width}x{height}, {frames} frames, gop {gop_size}")
    y, u, v = rgb_to_yuv420(render_rgb(width, height, frames, Fraction(fps)))
    info = VideoInfo(
        width=width,
        height=height,
        fps=Fraction(fps),
        frame_count=frames,
        color_range=COLOR_RANGE_TV,
        colorspace=SMPTE170M,
        color_primaries=SMPTE170M,
        color_trc=SMPTE170M,
    )
    gops = [
        Gop(y=y[s : s + gop_size], u=u[s : s + gop_size], v=v[s : s + gop_size], start=s)
        for s in range(0, frames, gop_size)
    ]
    return info, gops

"""Quality metrics of decoded video against its source: PSNR (Y, U, V, YUV) and MS-SSIM (Y)."""

from __future__ import annotations

import numpy as np
import torch
from pytorch_msssim import ms_ssim
from pytorch_msssim.ssim import _fspecial_gauss_1d, _ssim

from vcodec.frames import PSNR_YUV_WEIGHTS, Gop

PSNR_CAP_DB = 100.0  # dB: PSNR of identical frames (MSE 0), and the ceiling of every PSNR
PEAK_8BIT = 255.0  # largest sample value of 8-bit video

MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)  # the standard 5 scales, fine to coarse
MSSSIM_WIN_SIZE = 11  # pixels: the standard Gaussian window
MSSSIM_MIN_WIN_SIZE = 3  # pixels: the smallest window we shrink to
MSSSIM_WIN_SIGMA = 1.5  # pixels
MSSSIM_BATCH_FRAMES = 16  # frames per batch through pytorch_msssim

METRIC_KEYS = ("psnr_y", "psnr_u", "psnr_v", "psnr_yuv", "msssim_y")


def _check_same_shape(ref: np.ndarray, test: np.ndarray) -> None:
    if ref.shape != test.shape:
        raise ValueError(f"shapes differ: reference {ref.shape}, test {test.shape}")
    if ref.ndim != 3:
        raise ValueError(f"expected [T, H, W] frames, got shape {ref.shape}")


def psnr(ref: np.ndarray, test: np.ndarray, peak: float = PEAK_8BIT) -> np.ndarray:
    """Per-frame PSNR in dB of two [T, H, W] planes; float64 [T].

    Identical frames (MSE 0) get PSNR_CAP_DB, and every value is clipped to it, so a nearly
    perfect frame never scores above a perfect one.
    """
    _check_same_shape(ref, test)
    diff = ref.astype(np.float64) - test.astype(np.float64)
    mse = np.mean(diff * diff, axis=(1, 2))
    with np.errstate(divide="ignore"):
        value = 10.0 * np.log10(peak * peak / mse)
    return np.minimum(value, PSNR_CAP_DB)


def msssim_settings(height: int, width: int) -> tuple[int, int]:
    """(win_size, levels) of MS-SSIM for frames of this size.

    MS-SSIM needs the smaller side > (win_size - 1) * 2 ** (levels - 1). The standard 11-pixel
    window and 5 levels are kept when the frame allows; otherwise the window shrinks first (odd,
    down to 3), then the number of levels, so e.g. 176x144 gives (9, 5) and 64x64 gives (3, 5).
    """
    side = min(height, width)
    for levels in range(len(MSSSIM_WEIGHTS), 0, -1):
        for win_size in range(MSSSIM_WIN_SIZE, MSSSIM_MIN_WIN_SIZE - 1, -2):
            if side > (win_size - 1) * 2 ** (levels - 1):
                return win_size, levels
    raise ValueError(f"frames of {width}x{height} are too small for MS-SSIM")


def msssim_weights(levels: int) -> list[float]:
    """The first `levels` standard MS-SSIM weights, renormalised to sum to 1."""
    weights = MSSSIM_WEIGHTS[:levels]
    total = sum(weights)
    return [w / total for w in weights]


def _ms_ssim_levels(x: torch.Tensor, y: torch.Tensor, win_size: int, levels: int) -> torch.Tensor:
    """MS-SSIM of [N, 1, H, W] batches with any number of levels; [N].

    pytorch_msssim.ms_ssim always checks its size rule for 5 levels, so fewer levels run this
    same algorithm on its building blocks.
    """
    win = _fspecial_gauss_1d(win_size, MSSSIM_WIN_SIGMA).repeat([x.shape[1], 1, 1, 1]).to(x)
    weights = x.new_tensor(msssim_weights(levels))
    mcs = []
    for level in range(levels):
        ssim_per_channel, cs = _ssim(x, y, win=win, data_range=PEAK_8BIT, size_average=False)
        if level < levels - 1:
            mcs.append(torch.relu(cs))
            padding = [s % 2 for s in x.shape[2:]]
            x = torch.nn.functional.avg_pool2d(x, kernel_size=2, padding=padding)
            y = torch.nn.functional.avg_pool2d(y, kernel_size=2, padding=padding)
    stacked = torch.stack([*mcs, torch.relu(ssim_per_channel)], dim=0)  # [levels, N, C]
    return torch.prod(stacked ** weights.view(-1, 1, 1), dim=0).mean(1)


def msssim_y(ref_y: np.ndarray, test_y: np.ndarray, device: str = "cpu") -> np.ndarray:
    """Per-frame MS-SSIM of two luma planes [T, H, W] uint8 (data range 255); float64 [T].

    Window and levels follow msssim_settings(H, W). Frames go through in float32 batches of
    MSSSIM_BATCH_FRAMES.
    """
    _check_same_shape(ref_y, test_y)
    win_size, levels = msssim_settings(ref_y.shape[1], ref_y.shape[2])
    out = np.empty(ref_y.shape[0], dtype=np.float64)
    with torch.inference_mode():
        for start in range(0, ref_y.shape[0], MSSSIM_BATCH_FRAMES):
            stop = start + MSSSIM_BATCH_FRAMES
            x = torch.from_numpy(ref_y[start:stop]).to(device, torch.float32).unsqueeze(1)
            y = torch.from_numpy(test_y[start:stop]).to(device, torch.float32).unsqueeze(1)
            if levels == len(MSSSIM_WEIGHTS):
                value = ms_ssim(x, y, data_range=PEAK_8BIT, size_average=False, win_size=win_size)
            else:
                value = _ms_ssim_levels(x, y, win_size, levels)
            out[start:stop] = value.double().cpu().numpy()
    return out


def psnr_yuv(psnr_y: np.ndarray, psnr_u: np.ndarray, psnr_v: np.ndarray) -> np.ndarray:
    """PSNR-YUV = (6 Y + U + V) / 8, per frame."""
    wy, wu, wv = PSNR_YUV_WEIGHTS
    return (wy * psnr_y + wu * psnr_u + wv * psnr_v) / (wy + wu + wv)


def gop_metrics(ref: Gop, test: Gop, device: str = "cpu") -> dict[str, np.ndarray]:
    """Per-frame metrics of a decoded GOP against its source: the keys of METRIC_KEYS, each [T]."""
    if ref.n_frames != test.n_frames:
        raise ValueError(f"frame counts differ: reference {ref.n_frames}, test {test.n_frames}")
    out = {
        "psnr_y": psnr(ref.y, test.y),
        "psnr_u": psnr(ref.u, test.u),
        "psnr_v": psnr(ref.v, test.v),
    }
    out["psnr_yuv"] = psnr_yuv(out["psnr_y"], out["psnr_u"], out["psnr_v"])
    out["msssim_y"] = msssim_y(ref.y, test.y, device=device)
    return out


class RegionPsnr:
    """PSNR-Y inside and outside a region (the ROI and the background), over all frames added:
    the squared errors are summed per region first, so large and small regions weigh by area."""

    def __init__(self) -> None:
        self._sse = [0.0, 0.0]  # inside, outside
        self._count = [0, 0]

    def add(self, ref_y: np.ndarray, test_y: np.ndarray, inside: np.ndarray) -> None:
        """[T, H, W] luma planes and a bool [H, W] region."""
        _check_same_shape(ref_y, test_y)
        diff = ref_y.astype(np.float64) - test_y.astype(np.float64)
        for index, where in enumerate((inside, ~inside)):
            part = diff[:, where]
            self._sse[index] += float(np.sum(part * part))
            self._count[index] += part.size

    def values(self) -> tuple[float | None, float | None]:
        """(inside, outside) in dB; None for a region with no pixels."""
        return tuple(
            None if n == 0 else _db(sse / n) for sse, n in zip(self._sse, self._count, strict=True)
        )


def _db(mse: float) -> float:
    if mse == 0:
        return PSNR_CAP_DB
    return min(PSNR_CAP_DB, float(10.0 * np.log10(PEAK_8BIT * PEAK_8BIT / mse)))


class MetricAccumulator:
    """Collects per-frame metrics GOP by GOP; mean() averages over all frames (DESIGN §5)."""

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self._values: dict[str, list[np.ndarray]] = {key: [] for key in METRIC_KEYS}

    @property
    def frames(self) -> int:
        return int(sum(len(v) for v in self._values["psnr_y"]))

    def add(self, ref: Gop, test: Gop, device: str | None = None) -> dict[str, np.ndarray]:
        """Measure one GOP (on device, else the accumulator's), keep its per-frame values."""
        values = gop_metrics(ref, test, device=device or self.device)
        for key in METRIC_KEYS:
            self._values[key].append(values[key])
        return values

    def per_frame(self) -> dict[str, np.ndarray]:
        """Every frame's values so far, in the order added: float64 [frames] per key."""
        return {
            key: np.concatenate(parts) if parts else np.empty(0, dtype=np.float64)
            for key, parts in self._values.items()
        }

    def mean(self) -> dict[str, float]:
        """The mean over all frames of each metric; raises ValueError before any frame."""
        if self.frames == 0:
            raise ValueError("no frames measured yet")
        return {key: float(np.mean(values)) for key, values in self.per_frame().items()}

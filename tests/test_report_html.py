"""Tests of report.html: a tiny real bench's report, self-contained, rendered by Chromium."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import write_test_clip
from PIL import Image

from vcodec.eval.bench import BenchConfig, run_bench
from vcodec.eval.frame_crops import CROP_HEIGHT, CROP_WIDTH, Pair, centre_crop, pick_pair
from vcodec.eval.report import BenchPoint
from vcodec.frames import Gop

CLIP_SIZE = (192, 128)  # pixels, width x height: small, and wider than the crop is tall
CLIP_FRAMES = 8
QPS = "24,32,40"
CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no chromium, chromium-browser or google-chrome on PATH"
)
WINDOW = "1200,2000"  # pixels, the headless window (width, height)
CHROMIUM_TIMEOUT_S = 60
MIN_COLOURS = 64  # distinct colours of a rendered report (the plots and crops have hundreds)
MAX_SHARE_OF_ONE_COLOUR = 0.98  # of the screenshot's pixels: a blank page is 100 % white
WIPE_PERCENT = 25  # where the probe moves each slider
# Put first into <head>: records uncaught errors and console.error, then on load moves each
# wipe slider and picks the source on its left, and writes what it saw into <body>'s data.
PROBE = """<script>
var probeErrors = [];
window.addEventListener('error', function (e) { probeErrors.push(String(e.message)); });
window.addEventListener('unhandledrejection', function (e) { probeErrors.push(String(e.reason)); });
var consoleError = console.error;
console.error = function () {
  probeErrors.push(Array.from(arguments).join(' ')); consoleError.apply(console, arguments);
};
window.addEventListener('load', function () {
  var seen = [];
  document.querySelectorAll('.compare').forEach(function (box) {
    var range = box.querySelector('input[type=range]'), pick = box.querySelector('select');
    range.value = 'WIPE'; range.dispatchEvent(new Event('input'));
    pick.value = pick.options[0].value; pick.dispatchEvent(new Event('change'));
    var top = box.querySelector('img.top');
    var source = document.getElementById(pick.options[0].value);
    seen.push(top.style.clipPath + '|' + (top.src === source.src) + '|' + top.naturalWidth);
  });
  document.body.dataset.errors = JSON.stringify(probeErrors);
  document.body.dataset.wipes = JSON.stringify(seen);
});
</script>""".replace("WIPE", str(WIPE_PERCENT))


def _bench(tmp: Path, codecs: str) -> Path:
    """Run the bench on the small test clip; the report's path."""
    clip = tmp / "clip.y4m"
    write_test_clip(clip, *CLIP_SIZE, CLIP_FRAMES)
    config = BenchConfig.from_strings(
        codecs=codecs, qps=QPS, frames=CLIP_FRAMES, preset="medium", device="cpu", base="x264"
    )
    run_bench([clip], config, tmp / "out")
    return tmp / "out" / "report.html"


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _bench(tmp_path_factory.mktemp("bench"), "vcx,x264")


def _pngs(page: str) -> list[bytes]:
    """The PNGs of the page's img elements, in order."""
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    return [base64.b64decode(u) for u in uris]


def test_report_is_one_self_contained_file(report: Path) -> None:
    page = report.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:|//)|url\(|@import""", page)
    assert "<script src" not in page and "<link" not in page
    for title in ("Rate and quality", "BD-rate", "Speed/size map", "Frame comparison"):
        assert title in page
    assert re.search(r"<b>vcx q\d+</b>.*<b>x264 q\d+</b>", page)  # the pair's captions
    pngs = _pngs(page)
    assert len(pngs) == 2 + 3  # rd.png, pareto.png; source, vcx, x264
    assert pngs[:2] == [(report.parent / n).read_bytes() for n in ("rd.png", "pareto.png")]
    images = [Image.open(io.BytesIO(png)) for png in pngs]
    width, height = CLIP_SIZE
    assert all(im.size == (min(CROP_WIDTH, width), min(CROP_HEIGHT, height)) for im in images[2:])
    assert all(im.mode == "RGB" for im in images[2:])
    source, vcx, anchor = (np.asarray(im, np.float64) for im in images[2:])
    assert 0 < np.abs(vcx - source).mean() < 20 and 0 < np.abs(anchor - source).mean() < 20


def test_report_without_vcx_says_so(tmp_path: Path) -> None:
    page = _bench(tmp_path, "x264").read_text(encoding="utf-8")
    assert "ran no vcx codec on clip: nothing to compare" in page
    assert len(_pngs(page)) == 2 and "<select>" not in page


def _point(codec: str, q: int, kbps: float, clip: str = "c") -> BenchPoint:
    return BenchPoint(clip, codec, q, 1000, 8, kbps, 0.1, 30.0, 31.0, 0.9, 10.0, 10.0)


def test_pick_pair_takes_the_strongest_anchor_at_the_nearest_rate_mid_curve() -> None:
    points = [_point("vcx", q, k) for q, k in ((22, 400.0), (27, 200.0), (32, 100.0))]
    points += [_point("x264", q, k) for q, k in ((22, 300.0), (32, 180.0))]
    points += [_point("x265", q, k) for q, k in ((22, 392.0), (27, 190.0), (32, 99.0))]
    pair = pick_pair(points, [], "c")  # no BD-rate: any anchor; 100 / 99 is the nearest, but
    assert pair == Pair(points[1], points[6], pair.why)  # 200 / 190 is as near and mid-curve
    assert "nearest in rate" in pair.why
    rows = [
        {"clip": "c", "codec": "vcx", "anchor": a, "metric": "psnr_yuv", "bd_rate_pct": v}
        for a, v in (("x264", -30.0), ("x265", None))
    ]
    pair = pick_pair(points, rows, "c")
    assert (pair.vcx.q, pair.anchor.codec, pair.anchor.q) == (27, "x264", 32)
    assert "x264" in pair.why and "-30.00 %" in pair.why
    assert "no classical anchor" in pick_pair(points[:3], rows, "c")
    assert "no vcx codec" in pick_pair(points[3:], rows, "c")


def test_centre_crop_is_even_and_full_resolution() -> None:
    height, width = 2 * CROP_HEIGHT + 2, 2 * CROP_WIDTH + 6
    y = np.arange(2 * height * width, dtype=np.int64).reshape(2, height, width) % 251
    uv = np.zeros((2, height // 2, width // 2), np.uint8)
    gops = [Gop(y[:1].astype(np.uint8), uv[:1], uv[:1]), Gop(y[1:].astype(np.uint8), uv, uv, 1)]
    crop = centre_crop(gops, 1)
    assert (crop.frame, crop.top % 2, crop.left % 2) == (1, 0, 0)
    assert crop.y.shape == (CROP_HEIGHT, CROP_WIDTH)
    assert crop.u.shape == (CROP_HEIGHT // 2, CROP_WIDTH // 2)
    assert np.array_equal(
        crop.y, y[1, crop.top : crop.top + CROP_HEIGHT, crop.left :][:, :CROP_WIDTH]
    )
    small = centre_crop([replace(gops[0], y=gops[0].y[:, :5, :7])], 0)
    assert small.y.shape == (5, 7) and (small.top, small.left) == (0, 0)


def _chromium(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    command = [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    command += [f"--user-data-dir={tmp / 'profile'}", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S)


@needs_chromium
def test_report_renders_in_chromium_without_errors(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    run = _chromium(tmp_path, f"--screenshot={shot}", f"--window-size={WINDOW}", report.as_uri())
    assert shot.is_file(), run.stderr
    console = [
        line for line in run.stderr.splitlines() if "CONSOLE" in line and report.name in line
    ]
    assert not console, console  # the report logs nothing; an uncaught error would be here
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3)
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    assert len(colours) >= MIN_COLOURS and counts.max() / len(pixels) < MAX_SHARE_OF_ONE_COLOUR

    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text(encoding="utf-8").replace("<head>", "<head>" + PROBE, 1))
    run = _chromium(tmp_path, "--dump-dom", probed.as_uri())
    errors = re.search(r'data-errors="([^"]*)"', run.stdout)
    assert errors is not None, run.stdout[-2000:] + run.stderr[-2000:]
    assert errors.group(1) == "[]", errors.group(1)
    wipes = re.search(r'data-wipes="([^"]*)"', run.stdout).group(1).replace("&quot;", '"')
    cut = 100 - WIPE_PERCENT
    assert wipes == f'["inset(0px {cut}% 0px 0px)|true|{min(CROP_WIDTH, CLIP_SIZE[0])}"]'

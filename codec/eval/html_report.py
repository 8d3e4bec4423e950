"""The bench's report.html: plots, tables and frame crops in one file that needs no network."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from vcodec.eval.frame_crops import CropKey, FrameCrop, pick_pair
from vcodec.eval.report import BenchPoint
from vcodec.frames import VideoInfo

# bench.json settings shown at the top, with their labels
SHOWN_SETTINGS = {
    "vcodec": "vcodec",
    "codecs": "codecs",
    "qps": "QP / CRF points",
    "frames_per_clip": "frames per clip",
    "preset": "preset",
    "vcx_base_preset": "vcx base layer",
    "task": "task",
    "libavcodec": "libavcodec",
}
COMPARE_ZOOM = 2  # the wipe view shows the crops this many times larger, pixels as blocks

STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; } h3 { font-size: 15px; }
img.plot { max-width: 100%; border: 1px solid #ddd; }
table { border-collapse: collapse; margin: 8px 0 4px; font-size: 12px; }
th, td { border: 1px solid #ccc; padding: 2px 6px; white-space: nowrap; }
th { background: #f0f0f0; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.section td { border-bottom: 2px solid #888; }
td.good { color: #080; } td.bad { color: #b00; }
caption { text-align: left; font-weight: bold; padding: 4px 0; }
p.note { color: #555; max-width: 900px; }
nav { margin-bottom: 12px; } a { color: #0645ad; }
dl { display: grid; grid-template-columns: max-content auto; gap: 2px 12px; }
dt { font-weight: bold; } dd { margin: 0; }
.strip { display: flex; gap: 12px; flex-wrap: wrap; }
figure { margin: 0; } figcaption { font-size: 12px; color: #444; max-width: 360px; }
.pixels { image-rendering: pixelated; display: block; }
.wipe { position: relative; display: inline-block; margin-top: 8px; user-select: none; }
.wipe img.top { position: absolute; left: 0; top: 0; }
.wipe .line { position: absolute; top: 0; bottom: 0; width: 2px; background: #ff0; }
.controls { margin: 6px 0; } .controls input[type=range] { vertical-align: middle; }
"""

# the wipe views: each slider clips the top crop; each select picks a crop of its strip
SCRIPT = """
document.querySelectorAll('.compare').forEach(function (box) {
  var wipe = box.querySelector('.wipe'), range = box.querySelector('input[type=range]');
  var top = wipe.querySelector('img.top'), bottom = wipe.querySelector('img.bottom');
  var line = wipe.querySelector('.line'), picks = box.querySelectorAll('select');
  function show() {
    var cut = 100 - Number(range.value);
    top.style.clipPath = 'inset(0 ' + cut + '% 0 0)';
    line.style.left = range.value + '%';
  }
  function swap() {
    top.src = document.getElementById(picks[0].value).src;
    bottom.src = document.getElementById(picks[1].value).src;
  }
  range.addEventListener('input', show);
  picks.forEach(function (pick) { pick.addEventListener('change', swap); });
  swap();
  show();
});
"""


@dataclass(frozen=True)
class ClipFrames:
    """What the comparison of one clip needs: its name, colour facts and source crop."""

    name: str
    info: VideoInfo
    source: FrameCrop


def write_html_report(
    path: Path,
    *,
    settings: Mapping[str, Any],
    plots: Sequence[tuple[str, Path]],
    tables: Sequence[Table],
    clips: Sequence[ClipFrames],
    points: Sequence[BenchPoint],
    bd_rows: Sequence[Mapping[str, Any]],
    crops: Mapping[CropKey, FrameCrop],
) -> None:
    """Write report.html: the settings, each (title, PNG) plot, per clip the source beside vcx
    and the strongest anchor at about one rate (pick_pair), and the bench's rich tables."""
    sections = [(f"plot-{index}", title) for index, (title, _) in enumerate(plots)]
    sections += [("frames", "Frame comparison"), ("results", "Results")]
    heads = [f'<h2 id="{id_}">{html.escape(title)}</h2>' for id_, title in sections]
    links = " · ".join(f'<a href="#{id_}">{html.escape(title)}</a>' for id_, title in sections)
    body = [
        "<h1>vcodec bench report</h1>",
        f"<nav>{links}</nav>",
        _settings_list(settings),
        *(f"{heads[index]}\n{_plot(path)}" for index, (_, path) in enumerate(plots)),
        heads[-2],
        *(_comparison(c, index, points, bd_rows, crops) for index, c in enumerate(clips)),
        heads[-1],
        *(_table(t) for t in tables),
    ]
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>vcodec bench report</title>\n"
        f"<style>{STYLE}</style></head>\n<body>\n" + "\n".join(body) + "\n"
        f"<script>{SCRIPT}</script>\n</body></html>\n"
    )
    Path(path).write_text(page, encoding="utf-8")


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _plot(path: Path) -> str:
    return f'<img class="plot" alt="{html.escape(path.name)}" src="{_data_uri(path.read_bytes())}">'


def _settings_list(settings: Mapping[str, Any]) -> str:
    items = []
    for key, label in SHOWN_SETTINGS.items():
        value = settings.get(key)
        if value is None:
            continue
        text = ", ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
        items.append(f"<dt>{html.escape(label)}</dt><dd>{html.escape(text)}</dd>")
    return "<dl>" + "".join(items) + "</dl>"


def _plain(value: Any) -> str:
    """A rich table's title, header or cell (str or Text) as plain text."""
    return value.plain if isinstance(value, Text) else "" if value is None else str(value)


def _cell(value: Any, justify: str) -> str:
    text = _plain(value)
    kind = ["num"] if justify == "right" else []
    if text.endswith("%") and text[:1] in "+-":  # a BD-rate: negative saves bits
        kind.append("good" if text.startswith("-") else "bad")
    attr = f' class="{" ".join(kind)}"' if kind else ""
    return f"<td{attr}>{html.escape(text)}</td>"


def _table(table: Table) -> str:
    """A rich Table as an HTML table: its title, header, rows, sections and caption."""
    columns = [list(c.cells) for c in table.columns]
    head = "".join(f"<th>{html.escape(_plain(c.header))}</th>" for c in table.columns)
    rows = []
    for index, row in enumerate(table.rows):
        cells = "".join(
            _cell(cells[index], c.justify) for c, cells in zip(table.columns, columns, strict=True)
        )
        rows.append(f"<tr{' class=section' if row.end_section else ''}>{cells}</tr>")
    title = f"<caption>{html.escape(_plain(table.title))}</caption>" if table.title else ""
    note = f'<p class="note">{html.escape(_plain(table.caption))}</p>' if table.caption else ""
    return (
        f"<table>{title}<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>{note}"
    )


def _comparison(
    clip: ClipFrames,
    index: int,
    points: Sequence[BenchPoint],
    bd_rows: Sequence[Mapping[str, Any]],
    crops: Mapping[CropKey, FrameCrop],
) -> str:
    """One clip's source, vcx and anchor crops side by side, and a wipe view of two of them."""
    pair = pick_pair(points, bd_rows, clip.name)
    heading = f"<h3>{html.escape(clip.name)}</h3>"
    if isinstance(pair, str):
        return f'{heading}\n<p class="note">{html.escape(pair)}</p>'
    shown = [Shown(f"crop-{index}-source", "source", "uncompressed", clip.source)]
    for role, p in (("vcx", pair.vcx), ("anchor", pair.anchor)):
        crop = crops.get((p.clip, p.codec, p.q))
        if crop is None:
            return f'{heading}\n<p class="note">No frame of {html.escape(p.codec)} was kept.</p>'
        detail = f"{p.kbps:.1f} kbps, PSNR-YUV {p.psnr_yuv:.2f} dB"
        shown.append(Shown(f"crop-{index}-{role}", f"{p.codec} q{p.q}", detail, crop))
    src = clip.source
    where = (
        f"Frame {src.frame}, the {src.y.shape[1]}x{src.y.shape[0]} window at ({src.left}, "
        f"{src.top}), at full resolution; rates and PSNR are the clip's. Anchor: {pair.why}."
    )
    figures = "".join(_figure(s, clip.info) for s in shown)
    return "\n".join(
        [
            heading,
            f'<p class="note">{html.escape(where)}</p>',
            f'<div class="strip">{figures}</div>',
        ]
        + [_wipe(shown, src)]
    )


@dataclass(frozen=True)
class Shown:
    """One crop of a comparison: its element id, name (codec and q), rate and quality."""

    id: str
    name: str
    detail: str
    crop: FrameCrop


def _figure(shown: Shown, info: VideoInfo) -> str:
    uri = _data_uri(shown.crop.png(info))
    name, detail = html.escape(shown.name), html.escape(shown.detail)
    return (
        f'<figure><img class="pixels" id="{shown.id}" alt="{name}" src="{uri}">'
        f"<figcaption><b>{name}</b><br>{detail}</figcaption></figure>"
    )


def _wipe(shown: Sequence[Shown], source: FrameCrop) -> str:
    """A slider between two crops (vcx left, anchor right unless picked otherwise), enlarged."""
    height, width = (COMPARE_ZOOM * n for n in source.y.shape)
    size = f'width="{width}" height="{height}"'

    def select(chosen: Shown) -> str:
        options = "".join(
            f'<option value="{s.id}"{" selected" if s is chosen else ""}>'
            f"{html.escape(s.name)}</option>"
            for s in shown
        )
        return f"<select>{options}</select>"

    return (
        f'<div class="compare"><div class="controls">left {select(shown[1])} '
        f'<input type="range" min="0" max="100" value="50" aria-label="wipe"> '
        f"right {select(shown[2])} ({COMPARE_ZOOM}x)</div>"
        f'<div class="wipe"><img class="pixels bottom" alt="right" {size}>'
        f'<img class="pixels top" alt="left" {size}><div class="line"></div></div></div>'
    )

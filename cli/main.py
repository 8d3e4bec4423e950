"""The `vcodec` command line: parses options, calls the library, reports errors as one red line."""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from vcodec import __version__
from vcodec.bitstream.container import DEFAULT_MAX_PIXELS, StreamLimits
from vcodec.cli.bench import bench
from vcodec.cli.common import (
    Device,
    Force,
    MaxPixels,
    OneLineErrors,
    err,
    frame_progress,
    install_signal_handlers,
    out,
    reported_errors,
    setup_help,
)
from vcodec.cli.train import train_app
from vcodec.errors import UnknownModelError
from vcodec.files import is_stdio

setup_help()

AS_PROGRAM = False  # run() as the vcodec program, not called as a library (CliRunner)

app = typer.Typer(
    cls=OneLineErrors,
    name="vcodec",
    help="A learned, task-aware video codec: encode video to .vcx, decode it, benchmark it "
    "against x264/x265.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        out.print(f"vcodec {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """vcodec: encode, decode, inspect and benchmark .vcx video."""


@app.command()
def encode(
    sources: Annotated[
        list[Path],
        typer.Argument(
            help="Input video (mp4, mkv, avi, y4m, .264/.265, or a folder of PNG/JPG frames); "
            "- reads y4m or a container from standard input. Several inputs, or a folder of "
            "videos, go into the folder -o names, NAME.vcx each.",
            show_default=False,
        ),
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="The .vcx file to write (named *.vcx), or the folder of a batch."
        ),
    ],
    qp: Annotated[int, typer.Option(help="Quality, 0-51 (x264's scale): higher is smaller.")] = 32,
    base: Annotated[
        str,
        typer.Option(
            help="Base-layer codec: auto (SVT-AV1: with one keyframe a segment, smaller than "
            "x265 with temporal scaling on still cameras too), x265, x264 or av1. --roi, --task "
            "and --mode pure take x265 for auto."
        ),
    ] = "auto",
    scale: Annotated[
        str,
        typer.Option(
            help="Base-layer down-scaling: 1, 2, or auto (the parameter module picks 1 or 2 "
            "for the stream from its first GOP and --qp)."
        ),
    ] = "auto",
    preset: Annotated[str, typer.Option(help="Base-layer encoder preset.")] = "medium",
    tune: Annotated[
        str | None,
        typer.Option(
            help="Base-layer tuning: psnr (x264/x265's --tune psnr: no psycho-visual "
            "optimisation; SVT-AV1 aims at PSNR already) or none (the encoder's defaults). "
            "Default: psnr, none with --roi or --task."
        ),
    ] = None,
    frames: Annotated[int | None, typer.Option(help="Encode only the first N frames.")] = None,
    mode: Annotated[
        str, typer.Option(help="hybrid: base layer + mask samples; pure: mask samples alone.")
    ] = "hybrid",
    speed: Annotated[
        str,
        typer.Option(
            help="Stage set: fast (scale + temporal), medium (+ Wiener filters, one class), "
            "slow (+ their 6 and 18 classes). On an AV1 base, temporal and Wiener are off unless "
            "asked for. A stage asked for by name overrides it (--masks, --post, --predict-net: no "
            "speed runs them, they buy nothing measurable)."
        ),
    ] = "medium",
    masks: Annotated[
        bool | None,
        typer.Option(
            help="Hybrid: code mask samples over the base layer (default: off at every --speed)."
        ),
    ] = None,
    mask_search: Annotated[
        str | None,
        typer.Option(
            help="Mask choice: net (selection network), exhaustive (RD search through the "
            "reconstruction net, 32 runs a GOP) or fills (the same search on the net's fixed "
            "fills). Default: fills in pure mode, net in hybrid."
        ),
    ] = None,
    recon_model: Annotated[
        str,
        typer.Option(
            help="The mask codec's reconstruction net: recon-v2 (push-pull fills over 0-8 "
            "frames, blended per pixel) or recon-v1 (box fills; the first shipped)."
        ),
    ] = "recon-v2",
    post: Annotated[
        bool | None,
        typer.Option(
            help="Hybrid: the decoder cleans the base layer with the post-processing net "
            "(default: off at every --speed)."
        ),
    ] = None,
    post_model: Annotated[
        str,
        typer.Option(
            help="The post-processing net: post-v1 (trained for PSNR), post-v2 (the same task in "
            "~440 multiply-adds a pixel against ~5,200) or post-task-v1 (post-v1 fine-tuned for a "
            "detector's features: task-aware coding)."
        ),
    ] = "post-v1",
    temporal: Annotated[
        bool | None,
        typer.Option(
            help="Hybrid: static GOPs drop 1 frame in 2, 3 in 4 or 7 in 8 from the base layer; "
            "the decoder interpolates them (default: as --speed says)."
        ),
    ] = None,
    wiener: Annotated[
        bool | None,
        typer.Option(
            help="Hybrid: per GOP and plane, a least-squares filter from the decoded frames to "
            "the source, sent where it saves more than its bits (default: as --speed says)."
        ),
    ] = None,
    roi: Annotated[
        str,
        typer.Option(
            help="Regions of interest get the bits (QP offsets on an x264/x265 base; on av1 the "
            "background is only low-passed): none; motion (moving "
            "objects, no weights needed); yolo (objects from an ultralytics model) or nanodet "
            "(NanoDet ONNX boxes), both with --roi-model."
        ),
    ] = "none",
    roi_model: Annotated[
        str | None,
        typer.Option(
            help="--roi yolo: YOLO-seg (or detect) weights, a path or a model name; --roi "
            "nanodet: a NanoDet .onnx."
        ),
    ] = None,
    background_scale: Annotated[
        int | None,
        typer.Option(
            help="With --roi or --task: low-pass the background as a down- and up-scale by 2 "
            "or 4 would, before the base layer codes it (1: leave it sharp) (default: 4, or "
            "--task's choice)."
        ),
    ] = None,
    roi_qp_offset: Annotated[
        int | None,
        typer.Option(
            help="With --roi or --task on an x264/x265 base: the base layer's QP steps inside "
            "the regions of interest (default: -4, or --task's choice)."
        ),
    ] = None,
    background_qp_offset: Annotated[
        int | None,
        typer.Option(
            help="With --roi or --task on an x264/x265 base: the base layer's QP steps outside "
            "them (default: +6, or --task's choice)."
        ),
    ] = None,
    task: Annotated[
        str,
        typer.Option(
            help="Code for a machine task: detect, segment or track. Regions of interest come "
            "from --detector (else motion), with the background settings measured for the "
            "task; the task is stored in the stream (vcodec info shows it). none: for people."
        ),
    ] = "none",
    detector: Annotated[
        str | None,
        typer.Option(
            help="With --task: the detector whose boxes (or masks) are the regions of "
            "interest: onnx-nanodet:PATH (a NanoDet .onnx) or ultralytics:PATH|NAME."
        ),
    ] = None,
    predict_net: Annotated[
        bool | None,
        typer.Option(
            help="With --temporal: the decoder refines dropped frames with the predict-v1 "
            "network, not only their neighbours' mean (default: off at every --speed)."
        ),
    ] = None,
    flow: Annotated[
        bool | None,
        typer.Option(
            help="With --temporal: moving GOPs may drop frames too, interpolated along the "
            "optical flow (not with mask samples) (default: off at every --speed)."
        ),
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            "-j",
            min=0,
            help="Segments coded at once, in worker processes (0: one per core). The bytes do "
            "not depend on it.",
        ),
    ] = 0,
    threads: Annotated[
        int,
        typer.Option(
            min=0,
            help="The base encoder's threads per segment (0: all cores for a stream of one "
            "segment, else cores / jobs, 1 on a cluster). Equal --threads give equal bytes, "
            "whatever --jobs or --cluster.",
        ),
    ] = 0,
    cluster: Annotated[
        str | None,
        typer.Option(
            help="Code the windows as Ray tasks: auto (join the cluster `ray start` runs "
            "here), HOST:PORT, or local (start one for this run). Needs the cluster extra "
            "(pip install vcodec\\[cluster]).",
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Reuse the segments an interrupted encode of the same input and options kept "
            "beside the output.",
        ),
    ] = False,
    target_size: Annotated[
        str | None,
        typer.Option(
            help="The whole file's size (25MB, 1.5GiB): each segment's qp chosen from probe "
            "encodes so that the file lands on it (instead of --qp).",
        ),
    ] = None,
    bitrate: Annotated[
        str | None,
        typer.Option(help="The video's rate (800k, 2M bits a second), as --target-size does."),
    ] = None,
    target_psnr: Annotated[
        float | None,
        typer.Option(
            help="Each window at the highest qp whose PSNR-YUV reaches this many dB (probe "
            "encodes, decoded and measured).",
        ),
    ] = None,
    target_msssim: Annotated[
        float | None,
        typer.Option(
            help="Each window at the highest qp whose luma MS-SSIM reaches this (0.95, 0.99), "
            "as --target-psnr does.",
        ),
    ] = None,
    segment_seconds: Annotated[
        float,
        typer.Option(
            help="The longest segment, in seconds: the input is cut into windows this long "
            "(each cut is a keyframe: shorter windows mean more parallel work and finer "
            "resume, and a larger file), and each window at its scene changes.",
        ),
    ] = 60.0,
    stats: Annotated[
        bool,
        typer.Option(
            "--stats",
            help="Print each stage's seconds and bytes, the base layer's, and peak memory.",
        ),
    ] = False,
    device: Device = "auto",
    force: Force = False,
) -> None:
    """Encode a video into a .vcx file: cut into segments, coded in parallel."""
    with reported_errors():
        from vcodec.cli.batch import batch_inputs, run_batch
        from vcodec.files import readable_input
        from vcodec.io import open_video
        from vcodec.pipeline.config import EncodeConfig
        from vcodec.pipeline.encoder import check_vcx_name
        from vcodec.pipeline.encoder import encode as run_encode
        from vcodec.pipeline.workers import cores, local_runner, ray_runner

        config = EncodeConfig(
            qp=qp, base=base, scale=scale, preset=preset, tune=tune, frames=frames, device=device,
            mode=mode, speed=speed, masks=masks, mask_search=mask_search, recon_model=recon_model,
            post=post,
            post_model=post_model, temporal=temporal, predict_net=predict_net, flow=flow,
            wiener=wiener, roi=roi, roi_model=roi_model, background_scale=background_scale,
            roi_qp_offset=roi_qp_offset, background_qp_offset=background_qp_offset, task=task,
            detector=detector, threads=threads, segment_seconds=segment_seconds,
        ).validate()  # fmt: skip
        jobs = jobs or cores()
        runner = (
            ray_runner(cluster, config.threads or 1)
            if cluster
            else local_runner(jobs, fork=AS_PROGRAM)
        )

        def encode_one(src: Path, output: Path) -> Any:
            with readable_input(src) as path:
                with open_video(path) as reader:
                    total = reader.info.frame_count
                total = min(total, frames) if total and frames else total or frames
                with frame_progress(f"encoding {_name(src)}", total, "windows") as progress:
                    return run_encode(
                        path, output, config, force=force, progress=progress, runner=runner,
                        resume=resume, target_size=target_size, bitrate=bitrate,
                        target_psnr=target_psnr, target_msssim=target_msssim,
                    )  # fmt: skip

        inputs = batch_inputs(sources)
        if inputs is not None:
            code = run_batch(inputs, output, encode_one)
            if code:
                raise typer.Exit(code)
            return
        src = sources[0]
        if is_stdio(src):  # before standard input is read
            check_vcx_name(output)
        result = encode_one(src, output)
        out.print(_encode_line(output, result))
        if stats:
            out.print(_cost_table(result))


@app.command()
def decode(
    src: Annotated[
        Path, typer.Argument(help="The .vcx file to decode; - reads it from standard input.")
    ],
    output: Annotated[
        Path,
        typer.Option(
            "--output",
            "-o",
            help="Output: .y4m (exact), .mp4 or .mkv (x264), or a folder of PNG frames; - "
            "writes y4m to standard output (for a player: -o - | ffplay -).",
        ),
    ],
    fmt: Annotated[
        str | None,
        typer.Option("--format", help="y4m, mp4, mkv or png; default: from the output's suffix."),
    ] = None,
    lossless: Annotated[bool, typer.Option(help="mp4/mkv: lossless x264 (exact frames).")] = False,
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS,
    device: Device = "auto",
    force: Force = False,
) -> None:
    """Decode a .vcx file into video (or PNG frames)."""
    with reported_errors():
        from vcodec.pipeline.decoder import decode as run_decode
        from vcodec.pipeline.info import describe

        limits = StreamLimits(max_pixels=max_pixels)
        # a file is read twice (its frame count for the progress bar); a pipe only once
        total = describe(src, limits)["frames"] if Path(src).is_file() else None
        with frame_progress(f"decoding {_name(src)}", total) as progress:
            stats = run_decode(
                src,
                output,
                force=force,
                fmt=fmt,
                lossless=lossless,
                device=device,
                progress=progress,
                limits=limits,
            )
        line = f"{output}: {stats.frames} frames, {stats.frames / stats.seconds:.1f} fps"
        (err if is_stdio(output) else out).print(line)  # standard output carries the video


@app.command()
def info(
    src: Annotated[
        Path, typer.Argument(help="The .vcx file to inspect; - reads it from standard input.")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    max_pixels: MaxPixels = DEFAULT_MAX_PIXELS,
) -> None:
    """Show a .vcx file's header, chunks and rate (and check every checksum). Exits 5, after
    the summary, when this vcodec lacks a model (weights) the stream needs."""
    with reported_errors():
        from vcodec.pipeline.info import describe

        summary = describe(src, StreamLimits(max_pixels=max_pixels))
        if as_json:
            print(json.dumps(summary, indent=2))
        else:
            out.print(_info_table(summary))
        if summary["missing_models"]:
            raise UnknownModelError("; ".join(summary["missing_models"]))


def _name(path: Path) -> str:
    return "standard input" if is_stdio(path) else path.name


def _encode_line(output: Path, result: Any) -> str:
    """The encode's result: its bytes, and the video's rate (without the audio's bytes)."""
    audio = result.audio_bytes
    video = result.bytes - audio
    seconds = max(1, result.frames) / result.fps
    return (
        f"{output}: {result.frames} frames, {result.bytes:,} bytes"
        + (f" ({audio:,} of them audio, not in the rate)" if audio else "")
        + f", {8 * video / max(1, result.frames * result.width * result.height):.4f} bpp, "
        f"{8 * video / seconds / 1000:.1f} kbps, {result.frames / result.seconds:.1f} fps"
    )


def _cost_table(result) -> Table:
    """--stats: seconds, seconds per frame and bytes of the base layer and of every stage."""
    table = Table(title=f"costs ({result.seconds:.2f} s in all, peak {result.peak_rss_mb:.0f} MiB)")
    for column in ("part", "seconds", "ms/frame", "share", "bytes"):
        table.add_column(column, justify="left" if column == "part" else "right")
    for name, cost in result.costs.items():
        seconds = cost["seconds"]
        table.add_row(
            name, f"{seconds:.3f}", f"{1000 * seconds / max(1, result.frames):.1f}",
            f"{100 * seconds / max(result.seconds, 1e-9):.0f} %", f"{cost['bytes']:,}",
        )  # fmt: skip
    return table


SHOWN_SEGMENTS = 12  # `info` lists this many segments, then a count of the rest


def _segments_line(segments: list[dict[str, Any]], mode: str) -> str:
    """Each segment: its frames, base codec (pure mode: none), qp (and what was asked, when
    not a qp), bytes."""
    if not segments:
        return "one (a stream from before segments)"
    if mode == "pure":
        segments = [s | {"base": "pure"} for s in segments]
    bases = Counter(s["base"] for s in segments)
    parts = [f"{len(segments)} segments ({', '.join(f'{b}: {n}' for b, n in bases.items())})"]
    for s in segments[:SHOWN_SEGMENTS]:
        last = s["first_frame"] + s["frames"] - 1
        asked = "" if s["target"].startswith("qp") else f", asked {s['target']}"
        parts.append(
            f"frames {s['first_frame']}-{last}: {s['base']} qp {s['qp']}{asked}, "
            f"{s['bytes']:,} bytes"
        )
    if len(segments) > SHOWN_SEGMENTS:
        parts.append(f"... {len(segments) - SHOWN_SEGMENTS} more (--json lists them)")
    return "\n".join(parts)


RANGE_NAMES = {0: "unspecified", 1: "limited (tv)", 2: "full (pc)"}
MATRIX_NAMES = {
    0: "rgb",
    1: "bt709",
    2: "unspecified",
    5: "bt470bg",
    6: "smpte170m",
    7: "smpte240m",
    9: "bt2020nc",
    10: "bt2020c",
}


def _info_table(s: dict[str, Any]) -> Table:
    h = s["header"]
    table = Table(title=s["file"], show_header=False)
    rows = [
        ("size", f"{h['width']}x{h['height']}, {h['pix_fmt']}"),
        (
            "frames",
            f"{s['frames']} in {s['gops']} GOPs of {h['gop_size']}, "
            f"{h['fps_num']}/{h['fps_den']} fps, {s['duration_s']} s",
        ),
        (
            "mode",
            f"pure, qp {h['qp']}"
            if h["mode"] == "pure"
            else f"hybrid, qp {h['qp']}" + ("" if s["segments"] else f", base {h['base_codec']}"),
        ),
        ("task", h["task"]),
        ("segments", _segments_line(s["segments"], h["mode"])),
        ("scales", ", ".join(f"s={k}: {v} GOPs" for k, v in s["gop_scales"].items())),
        (
            "post strength",
            ", ".join(f"{k}: {v} GOPs" for k, v in s["gop_post_strengths"].items()) or "none",
        ),
        (
            "temporal step",
            ", ".join(f"{k}: {v} GOPs" for k, v in s["gop_temporal_steps"].items()) or "none",
        ),
        (
            "wiener",
            ", ".join(f"{p.upper()}: {n} GOPs" for p, n in s["gop_wiener_planes"].items() if n)
            or "none",
        ),
        (
            "roi",
            f"{s['roi']['source']}, {s['roi']['gops']} GOP maps, "
            f"{100 * s['roi']['mean_coverage']:.1f} % of the frame on average"
            if s["roi"]
            else "none",
        ),
        (
            "colour",
            f"range {RANGE_NAMES.get(h['color_range'], h['color_range'])}, "
            f"matrix {MATRIX_NAMES.get(h['colorspace'], h['colorspace'])}, "
            f"primaries {h['color_primaries']}, transfer {h['color_trc']}",
        ),
        ("models", ", ".join(f"{k} ({v[:12]})" for k, v in h["models"].items()) or "none"),
        ("notes", "; ".join(h["notes"]) or "none"),
        ("rate", f"{s['bytes']:,} bytes, {s['kbps']} kbps, {s['bpp']} bpp"),
        (
            "header",
            f"format version {h['format_version']}, {h['bytes']} bytes, written by "
            f"{h['encoder'] or 'unknown'}",
        ),
    ]
    rows += [
        (f"{k} chunks", f"{v['count']} ({v['bytes']:,} bytes)") for k, v in s["chunks"].items()
    ]
    for key, value in rows:
        table.add_row(key, value)
    return table


app.command()(bench)
app.add_typer(train_app, name="train")


def run() -> None:
    """Console-script entry point: SIGTERM and SIGHUP stop a run as Ctrl-C does; worker
    processes may be forked (this process runs nothing else: workers.local_runner)."""
    global AS_PROGRAM
    AS_PROGRAM = True
    install_signal_handlers()
    app(prog_name="vcodec")


if __name__ == "__main__":
    sys.exit(run())

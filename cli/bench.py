"""`vcodec bench`: the rate-distortion bench and the speed/size map (codec/eval/bench.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import Progress

from vcodec.cli.common import Device, Force, err, out, reported_errors


def bench(
    inputs: Annotated[
        list[Path] | None,
        typer.Argument(help="Clips to benchmark; none: the built-in sample clip."),
    ] = None,
    codecs: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated: vcx, vcx-nomask (no mask samples), vcx-nopost (no "
            "post-processing network), vcx-post / vcx-post2 (--post with post-v1 / post-v2), "
            "vcx-notemporal (no temporal scaling), vcx-nowiener / vcx-wiener (Wiener filters "
            "off / on, also on an AV1 base), vcx-x265 / vcx-av1 (--base x265 / av1), "
            "vcx-notune (--tune none), vcx-noflow / vcx-flow (--no-flow / --flow), vcx-noparams "
            "(--scale 1: no parameter module), vcx-s2 (--scale 2), vcx-exhaustive (RD-search "
            "masks), vcx-task "
            "(vcodec encode --task: --task's, else detect, with the maps' detector), vcx-roi "
            "(--roi motion, or the --task detector's objects), vcx-roi-sharp (vcx-roi, background "
            "not low-passed), vcx-roi-task (vcx-roi with --post-model post-task-v1), vcx-pure "
            "(no base layer), vcx-pure-recon1 (vcx-pure with recon-v1 and the selection "
            "network), x264, x265, av1 (SVT-AV1), x264-roi (x264 with vcx-roi's ROI maps and "
            "QP offsets), x264-psnr / x265-psnr (--tune psnr: vcx's base layer alone). "
            "A classical codec at another preset: x265:slow, x264:veryslow, "
            "av1:6 (SVT-AV1 presets 0-13); a vcx codec at a --speed: vcx:fast, vcx:slow. "
            "Plain names run at --preset and at vcx's default speed. Default: "
            "vcx,x264,x265,x265-psnr,av1; with --set fixed-cameras, its speed/size map: "
            "vcx,av1:4,av1:6,av1,av1:10,x265,x265:slow."
        ),
    ] = None,
    qps: Annotated[
        str | None,
        typer.Option(
            "--qp", help="Comma-separated QP/CRF points for every codec (default: 22,27,32,37,42)."
        ),
    ] = None,
    frames: Annotated[int, typer.Option(help="Frames per clip (from the start).")] = 50,
    preset: Annotated[
        str, typer.Option(help="Encoder preset of the anchors and vcx's base layer.")
    ] = "medium",
    base: Annotated[
        str,
        typer.Option(
            help="The vcx codecs' base layer: auto (vcodec encode's default: av1, x265 with "
            "--task), x265, x264 or av1 (at --preset's SVT-AV1 preset; with auto or av1, av1 "
            "runs as well, at that preset). The anchors stay as named."
        ),
    ] = "auto",
    out_dir: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Folder for bench.json, bench.csv, rd.png, pareto.png and report.html (all in "
            "one page). A folder that holds only these is replaced by the next run; beside "
            "other files, --force.",
        ),
    ] = Path("bench_out"),
    task: Annotated[
        str | None,
        typer.Option(
            help="detect: detection mAP@0.5 and mAP@[.5:.95] of every point, against a MOT "
            "sequence's gt.txt, a YOLO folder's labels or a seed-003 split's labels, else "
            "pseudo ground truth (the detector on the uncompressed frames); track: also MOTA "
            "and IDF1 of an IoU tracker on the detections (MOT or track_id labels, or pseudo); "
            "segment: mIoU of an ultralytics -seg model's class maps against a seed-003 "
            "split's masks/ PNGs, or pseudo. With several clips, POOLED points score all "
            "their frames as one set."
        ),
    ] = None,
    detector: Annotated[
        str | None,
        typer.Option(
            help="--task: the judge, onnx-nanodet:PATH (OpenCV DNN) or ultralytics:PATH|NAME."
        ),
    ] = None,
    map_detector: Annotated[
        str | None,
        typer.Option(
            help="--task: the detector whose boxes are the ROI maps of vcx-task, vcx-roi and "
            "x264-roi (default: --detector). Another than the judge shows whether a codec "
            "tuned to one detector helps another."
        ),
    ] = None,
    set_name: Annotated[
        str | None,
        typer.Option(
            "--set",
            help="A named set of clips instead of INPUT: fixed-cameras (the fixedcam_*, "
            "intel_car and highway/traffic camera clips in --clips).",
        ),
    ] = None,
    clips_dir: Annotated[Path, typer.Option("--clips", help="Where --set finds its clips.")] = Path(
        "../shared/data/clips"
    ),
    cluster: Annotated[
        str | None,
        typer.Option(
            help="Run each point (clip x codec x qp) as a task on a Ray cluster: auto (the "
            "one `ray start` runs here), HOST:PORT, or local (one started for the run). Needs "
            "the cluster extra (pip install vcodec\\[cluster]); speeds are then measured "
            "beside other points.",
        ),
    ] = None,
    device: Device = "auto",
    force: Force = False,
) -> None:
    """Rate-distortion bench of vcx against x264, x265 and SVT-AV1: tables, JSON, CSV, RD
    plot and the speed/size map (pareto.png)."""
    with reported_errors():
        from vcodec.errors import InputError
        from vcodec.eval.bench import BenchConfig, run_bench
        from vcodec.eval.clips import CLIP_SETS, clip_set

        if set_name is not None:
            if inputs:
                raise InputError("give clips or --set, not both")
            inputs = clip_set(set_name, clips_dir)
            codecs = codecs or CLIP_SETS[set_name][1]
        codecs = codecs or "vcx,x264,x265,x265-psnr,av1"

        config = BenchConfig.from_strings(
            codecs=codecs,
            qps=qps,
            frames=frames,
            preset=preset,
            device=device,
            task=task,
            detector=detector,
            base=base,
            map_detector=map_detector,
        )
        total = config.work_units(len(inputs) if inputs else 1)
        with Progress(console=err, transient=True, disable=not err.is_terminal) as bar:
            task = bar.add_task("benchmarking", total=total)

            def progress(label: str) -> None:
                bar.update(task, advance=1, description=label)
                if not err.is_terminal:  # a log: one line per point instead of the bar
                    err.print(f"{label} ({int(bar.tasks[0].completed)}/{total})")

            result = run_bench(
                inputs or [], config, out_dir, force=force, progress=progress, cluster=cluster
            )
        for table in result.tables:
            out.print(table)
        out.print(f"wrote {', '.join(str(p) for p in result.files)}")

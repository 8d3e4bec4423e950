"""`vcodec encode --task`: one switch sets the ROI stage and the task's settings, is stored in the
header, shown by `info`, and is the bench's vcx-task codec."""

from __future__ import annotations

import json

import pytest
from test_cli import one_line_error, vcodec

from vcodec.errors import EXIT_BAD_INPUT, InputError
from vcodec.eval.anchors import parse_codec
from vcodec.eval.bench import BenchConfig, vcx_config
from vcodec.pipeline.config import ROI_DEFAULTS, TASK_SETTINGS, EncodeConfig


def test_task_sets_the_roi_stage_and_its_settings() -> None:
    config = EncodeConfig(task="detect").validate()
    assert (config.roi, config.roi_model) == ("motion", None)  # no detector: motion
    for field, value in TASK_SETTINGS["detect"].items():
        assert getattr(config, field) == value
    config = EncodeConfig(task="track", detector="onnx-nanodet:m.onnx").validate()
    assert (config.roi, config.roi_model) == ("nanodet", "m.onnx")
    assert config.temporal is False and EncodeConfig(base="x265").validate().temporal is True
    config = EncodeConfig(task="detect", background_qp_offset=3, temporal=True).validate()
    assert config.background_qp_offset == 3 and config.temporal is True  # asked by name
    plain = EncodeConfig(roi="motion").validate()
    assert all(getattr(plain, k) == v for k, v in ROI_DEFAULTS.items())
    assert EncodeConfig().validate().roi == "none"


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"task": "count"}, "--task must be one of"),
        ({"task": "detect", "detector": "onnx-nanodet:m.onnx", "roi": "motion"}, "leave out"),
        ({"detector": "onnx-nanodet:m.onnx"}, "--detector goes with --task"),
        ({"task": "detect", "detector": "yolo.pt"}, "--detector must be"),
        ({"task": "detect", "mode": "pure"}, "--task works on the base layer"),
        ({"task": "detect", "base": "av1", "roi_qp_offset": -4}, "need --base x264 or x265"),
        ({"roi": "motion", "roi_qp_offset": -60}, "--roi-qp-offset must be between"),
    ],
)
def test_bad_task_settings_are_refused(fields, message) -> None:
    with pytest.raises(InputError, match=message):
        EncodeConfig(**fields).validate()


def test_encode_task_is_in_the_header_and_info(tmp_path, clip_factory) -> None:
    src = clip_factory(tmp_path / "in.y4m", 96, 64, 16)
    out = tmp_path / "t.vcx"
    result = vcodec("encode", src, "-o", out, "--task", "detect", "--qp", "34")
    assert result.exit_code == 0, result.output
    summary = json.loads(vcodec("info", out, "--json").stdout)
    assert summary["header"]["task"] == "detect" and summary["roi"]["source"] == "motion"
    assert "detect" in vcodec("info", out).stdout
    assert vcodec("decode", out, "-o", tmp_path / "t.y4m").exit_code == 0
    one_line_error(
        vcodec("encode", src, "-o", tmp_path / "u.vcx", "--task", "detect", "--roi", "yolo"),
        EXIT_BAD_INPUT,
    )


def test_bench_vcx_task_takes_the_maps_detector() -> None:
    judge, maps = "onnx-nanodet:judge.onnx", "onnx-nanodet:maps.onnx"
    config = BenchConfig.from_strings(
        codecs="vcx-task,x264-roi", qps="30,40", frames=8, preset="medium", device="cpu",
        task="track", detector=judge, map_detector=maps,
    )  # fmt: skip
    encode = vcx_config(config, parse_codec("vcx-task", "medium"), 30)
    assert (encode.task, encode.detector) == ("track", maps)
    assert config.roi == ("nanodet", "maps.onnx")  # x264-roi's maps too
    plain = BenchConfig.from_strings(
        codecs="vcx-task", qps="30,40", frames=8, preset="medium", device="cpu"
    )
    encode = vcx_config(plain, parse_codec("vcx-task", "medium"), 30)
    assert (encode.task, encode.detector) == ("detect", None)
    with pytest.raises(InputError, match="--map-detector goes with --task"):
        BenchConfig.from_strings(
            codecs="vcx", qps="30", frames=8, preset="medium", device="cpu", map_detector=maps
        )

"""The preflight memory finding end to end: a scene made with bpy at test time whose render
really needs memory (a generated 4096² float image texture, which Blender and Cycles each
hold: about 770 MiB peak against about 330 MiB for the same scene with a 16² image), scouted
by ``estimate --memory`` and by ``submit --chunk auto`` (which scouts before the check)
through the real child Blender. A job memory below the measured peak: the finding's one
line names both numbers, exit 43, nothing uploaded; enough memory: no finding."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from addon.cli import main
from addon.core.aws.session import client
from addon.core.exitcodes import CHECK_ERRORS, SUCCESS
from tests.helpers import bpy_script_argv

SCRIPT = Path(__file__).with_name("memory_scene.py")
#: between the light scene's scout peak (330-360 MiB measured, bpy 4.5 and 5.2) and the heavy
#: one's (770-800 MiB)
LIMIT_MIB = 600


@pytest.fixture(scope="module")
def heavy(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("memory") / "heavy.blend"
    proc = subprocess.run(bpy_script_argv(SCRIPT, str(out), "4096"), capture_output=True, text=True, timeout=120)
    assert out.is_file(), proc.stdout[-2000:] + proc.stderr[-2000:]
    return out


def _finding(err: str) -> tuple[int, int]:
    """(measured peak, allowed) from the one MEMORY_OVER_LIMIT line."""
    lines = [line for line in err.splitlines() if "MEMORY_OVER_LIMIT" in line]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    m = re.search(r"peaked at (\d+) MiB but a chunk gets (\d+) MiB: raise the memory \(--memory (\d+)", lines[0])
    assert m, lines[0]
    assert int(m[3]) > int(m[1])  # the memory it suggests holds the peak
    return int(m[1]), int(m[2])


def test_estimate_reports_the_measured_peak_above_the_job_memory(heavy, aws, capsys):
    common = ["estimate", str(heavy), "--instance-types", "c6i", "--vcpus", "4", "--max-vcpus", "16",
              "--region", "us-east-1", "--endpoint-url", aws.endpoint]  # fmt: skip
    code = main([*common, "--memory", str(LIMIT_MIB)])
    out, err = capsys.readouterr()
    assert code == CHECK_ERRORS and out.startswith("≈ $"), err  # the quote is still shown
    peak, allowed = _finding(err)
    assert allowed == LIMIT_MIB and peak > LIMIT_MIB  # (enough memory: the submit test below)


def test_submit_chunk_auto_refuses_before_uploading_and_goes_ahead_with_enough(heavy, aws_settings, s3_bucket,
                                                                               tmp_path, capsys):  # fmt: skip
    from tests.test_aws_batch_support import RENDER_DEF, STITCH_DEF, create_batch_env

    env = create_batch_env(aws_settings)
    s3 = client("s3", aws_settings)

    def submit(memory: int, records: str) -> tuple[int, str, str]:
        code = main([
            "submit", str(heavy), "--chunk", "auto", "--vcpus", "4", "--memory", str(memory), "--bucket", s3_bucket,
            "--queue", env.queue_arn, "--job-definition", RENDER_DEF, "--stitch-job-definition", STITCH_DEF,
            "--endpoint-url", aws_settings.endpoint_url, "--region", "us-east-1", "--records", str(tmp_path / records),
        ])  # fmt: skip
        return code, *capsys.readouterr()

    code, out, err = submit(LIMIT_MIB, "r1")
    assert code == CHECK_ERRORS and "Submitted" not in out, err
    peak, allowed = _finding(err)
    assert allowed == LIMIT_MIB and peak > LIMIT_MIB
    assert s3.list_objects_v2(Bucket=s3_bucket)["KeyCount"] == 0  # nothing uploaded
    assert not (tmp_path / "r1").exists() or not any((tmp_path / "r1").iterdir())  # nothing recorded

    code, out, err = submit(peak * 2, "r2")
    assert code == SUCCESS and "MEMORY_OVER_LIMIT" not in err, err
    assert s3.list_objects_v2(Bucket=s3_bucket)["KeyCount"] > 0


def test_submit_with_an_error_finding_leaves_the_s3_bucket_empty(aws_settings, s3_bucket, tmp_path, capsys):
    """No camera (a scene check error, no scout): refused before packing, the bucket stays empty."""
    from tests.test_aws_batch_support import RENDER_DEF, STITCH_DEF, create_batch_env
    from tests.test_preflight import SCENES

    out_blend = tmp_path / "bad.blend"
    proc = subprocess.run(bpy_script_argv(SCENES, str(out_blend), "bad"), capture_output=True, text=True, timeout=120)
    assert out_blend.is_file(), proc.stdout[-2000:] + proc.stderr[-2000:]
    env = create_batch_env(aws_settings)
    code = main([
        "submit", str(out_blend), "--bucket", s3_bucket, "--queue", env.queue_arn, "--job-definition", RENDER_DEF,
        "--stitch-job-definition", STITCH_DEF, "--endpoint-url", aws_settings.endpoint_url, "--region", "us-east-1",
        "--records", str(tmp_path / "r"),
    ])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == CHECK_ERRORS and "NO_CAMERA" in err and "Submitted" not in out, err
    assert client("s3", aws_settings).list_objects_v2(Bucket=s3_bucket)["KeyCount"] == 0  # nothing uploaded


def test_panel_estimate_reports_the_peak_above_the_stacks_job_memory(heavy, aws, aws_settings, tmp_path,
                                                                     monkeypatch):  # fmt: skip
    """The panel's Estimate (scout in a thread) checks the peak against the stack's
    RenderMemoryMiB and shows the finding as the quote's error."""
    bpy = pytest.importorskip("bpy")
    from test_addon_support import configure_prefs, drain, ensure_installed, mod, reset_addon_state, set_online

    template = {
        "Parameters": {"RenderMemoryMiB": {"Type": "String"}},
        "Resources": {"Nothing": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
    }
    client("cloudformation", aws_settings).create_stack(
        StackName="abr-mem", TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": "RenderMemoryMiB", "ParameterValue": str(LIMIT_MIB)}],
    )  # fmt: skip
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    ensure_installed()
    reset_addon_state()
    set_online(True)
    q = None
    try:
        configure_prefs(aws.endpoint, "abr-test", {})
        bpy.ops.wm.open_mainfile(filepath=str(heavy))
        mod("blender.config").prefs().stack_name = "abr-mem"
        assert bpy.ops.awsbatch.estimate() == {"FINISHED"}
        bg = mod("blender.background")
        drain(timeout=180, until=lambda: not bg.busy("estimate") and bg.MESSAGES.empty())
        drain(timeout=10)
        q = bpy.context.window_manager.awsbatch_quote
        assert q.line.startswith("≈ $"), (q.line, q.error)
        peak, allowed = _finding(q.error)
        assert allowed == LIMIT_MIB and peak > LIMIT_MIB
    finally:
        set_online(False)
        mod("blender.config").prefs().stack_name = ""
        reset_addon_state()
        if q is not None:
            q.line, q.error, q.backend, q.price_per_vcpu_hour = "", "", "", 0.0

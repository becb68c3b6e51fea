"""Pure pieces of addon.core.stack: outputs mapping, parameter handling, names."""

from __future__ import annotations

import pytest

from addon.core.aws import deploy, image_versions, images, stack

OUTPUTS = {
    "BucketName": "b",
    "JobQueue": "arn:q",
    "RenderJobDefinition": "arn:r",
    "StitchJobDefinition": "arn:s",
    "RepositoryUri": "1.dkr.ecr.us-east-1.amazonaws.com/x-worker",
    "LogGroupName": "/aws-batch-render/x",
    "Region": "us-east-1",
}


def _stack(outputs: dict[str, str]) -> dict:
    return {
        "StackStatus": "CREATE_COMPLETE",
        "Outputs": [{"OutputKey": k, "OutputValue": v} for k, v in outputs.items()],
    }


def test_outputs_map_to_fields_and_gpu_defaults_to_empty():
    out = stack.outputs_from_stack("x", _stack(OUTPUTS))
    assert (out.bucket, out.job_queue, out.render_job_definition, out.stitch_job_definition) == (
        "b",
        "arn:q",
        "arn:r",
        "arn:s",
    )
    assert out.gpu_job_queue == "" and out.submitter_policy == "" and out.image_tags == ()
    with_gpu = stack.outputs_from_stack("x", _stack({**OUTPUTS, "GpuJobQueue": "arn:g"}))
    assert with_gpu.gpu_job_queue == "arn:g"


def test_missing_output_names_it_and_says_what_to_do():
    partial = {k: v for k, v in OUTPUTS.items() if k != "RenderJobDefinition"}
    with pytest.raises(stack.StackError, match=r"no output RenderJobDefinition.*aws-batch-render deploy --stack x"):
        stack.outputs_from_stack("x", _stack(partial))


def test_parse_parameters():
    assert deploy.parse_parameters(["A=1", "SubnetIds=subnet-1,subnet-2", "Empty="]) == {
        "A": "1",
        "SubnetIds": "subnet-1,subnet-2",
        "Empty": "",
    }
    for bad in ("novalue", "=1", "bad-key=1"):
        with pytest.raises(stack.StackError, match="KEY=VALUE"):
            deploy.parse_parameters([bad])


def test_resolve_parameters_given_then_previous_then_default():
    declared = {"A": "1", "B": "2", "C": "3"}
    assert deploy.resolve_parameters(declared, {"A": "9"}, {"A": "5", "B": "6"}) == {"A": "9", "B": "6", "C": "3"}
    with pytest.raises(stack.StackError, match="Unknown stack parameter Z"):
        deploy.resolve_parameters(declared, {"Z": "1"}, {})


@pytest.mark.parametrize("name", ["render", "my-render-2", "a"])
def test_good_stack_names(name):
    assert stack.validate_stack_name(name) == name


@pytest.mark.parametrize("name", ["", "Render", "2render", "my_render", "x" * 121])
def test_bad_stack_names(name):
    with pytest.raises(stack.StackError, match="lowercase"):
        stack.validate_stack_name(name)


def test_build_version_picks_the_newest_committed_patch(tmp_path):
    (tmp_path / "requirements").mkdir()
    for v, py in (("5.2.1", "3.13"), ("5.2.3", "3.13"), ("4.5.15", "3.11")):
        (tmp_path / images.constraints_file(v)).write_text(f"# python {py} (the bpy wheel's tag)\nbpy=={v}\n")
    text = "FROM a AS python-3.13\nFROM b AS python-3.11\nRUN pip install -c constraints-bpy-${BLENDER_VERSION}.txt\n"
    assert image_versions.build_version("5.2", tmp_path, text) == ("5.2.3", "3.13")
    assert image_versions.build_version("4.5.15", tmp_path, text) == ("4.5.15", "3.11")
    (tmp_path / images.constraints_file("4.5.15")).write_text("# python 3.12\nbpy==4.5.15\n")
    with pytest.raises(images.ImagePublishError, match=r"No Debian base with Python 3\.12"):
        image_versions.build_version("4.5.15", tmp_path, text)
    with pytest.raises(images.ImagePublishError, match=r"older than the oldest supported, 4\.2"):
        image_versions.build_version("3.6", tmp_path, text)


def test_load_template_default_and_missing(tmp_path):
    assert "AWS::Batch::JobDefinition" in deploy.load_template()
    with pytest.raises(stack.StackError, match="--template"):
        deploy.load_template(tmp_path / "nope.yaml")

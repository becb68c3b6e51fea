"""The job spec contract: round trip and a clear message for every defect."""

from __future__ import annotations

import copy
import json

import pytest

from addon.core.errors import JobSpecError
from addon.core.jobspec import SCHEMA_VERSION, JobSpec, frame_file_name, frame_from_name
from tests.helpers import SHA_A, make_spec


def test_round_trip_is_lossless():
    spec = make_spec()
    again = JobSpec.from_json(spec.to_json())
    assert again == spec
    assert again.to_json() == spec.to_json()
    assert again.frames == [1, 2, 3, 4, 5, 6, 7, 8]
    assert again.output.video.fps == 24.0


def test_derived_locations():
    spec = make_spec("s3://bucket/")
    assert spec.frame_uri(7) == "s3://bucket/submissions/sub-test-1/frames/frame_000007.png"
    assert spec.input_uri("scene.blend") == "s3://bucket/inputs/" + SHA_A
    assert spec.progress_record_uri(3) == "s3://bucket/submissions/sub-test-1/progress/slice-00003.json"
    assert spec.video_file_uri() == "s3://bucket/submissions/sub-test-1/video/video.mp4"
    assert spec.poster_uri().endswith("video/video-poster.jpg")


def test_frame_names_round_trip():
    assert frame_file_name(12, "OPEN_EXR") == "frame_000012.exr"
    assert frame_from_name("s3://b/x/frame_000012.exr") == 12
    assert frame_from_name("frame_-00003.png") == -3
    assert frame_from_name("poster.jpg") is None


def _mutated(mutate) -> dict:
    data = copy.deepcopy(make_spec().to_dict())
    mutate(data)
    return data


DEFECTS = [
    (lambda d: d.update(schema_version=SCHEMA_VERSION + 1), "newer than this worker understands"),
    (lambda d: d.update(schema_version=0), "schema version 0 is not supported"),
    (lambda d: d.pop("schema_version"), "schema version None is not supported"),
    (lambda d: d.pop("submission_id"), "spec.submission_id is missing"),
    (lambda d: d.update(submission_id=5), "spec.submission_id must be a string, got the number 5"),
    (lambda d: d.update(submission_id="a b"), "must be 1-128 letters"),
    (lambda d: d.update(created_at="yesterday"), "not an ISO 8601 time"),
    (lambda d: d.update(colour="red"), "unknown field(s) colour"),
    (lambda d: d["inputs"].pop("main_blend"), "spec.inputs.main_blend is missing"),
    (lambda d: d["inputs"].update(files={}), "spec.inputs.files is empty"),
    (lambda d: d["inputs"]["files"].update({"../etc/passwd": SHA_A}), "must be relative"),
    (lambda d: d["inputs"]["files"].update({"scene.blend": "abc"}), "not a lowercase sha256"),
    (lambda d: d["inputs"].update(main_blend="other.blend"), "is not among spec.inputs.files"),
    (lambda d: d["inputs"].update(uri="ftp://x/"), "spec.inputs.uri"),
    (lambda d: d["inputs"].update(uri="s3://bucket/inputs"), "must be a prefix ending in '/'"),
    (lambda d: d.update(slices=[]), "no frames to render"),
    (lambda d: d.update(slices=[[1, 2], []]), "spec.slices[1] is empty"),
    (lambda d: d.update(slices=[[1, 2], [2, 3]]), "Frame 2 is in both spec.slices[0] and spec.slices[1]"),
    (lambda d: d.update(slices=[[3, 2]]), "not in ascending order"),
    (lambda d: d.update(slices=[[1, "2"]]), "spec.slices[0][1] must be a whole number"),
    (lambda d: d.update(slices=[[1, True]]), "spec.slices[0][1] must be a whole number, got true"),
    (lambda d: d.update(slices="1-10"), "spec.slices must be a list"),
    (lambda d: d["output"].update(image_format="TIFF"), "image_format 'TIFF' is not one of"),
    (lambda d: d["output"]["video"].update(fps_num=0), "fps 0/1 must be positive"),
    (lambda d: d["output"]["video"].update(codec="mpeg1"), "codec 'mpeg1' is not one of"),
    (lambda d: d["output"]["video"].update(container="avi"), "container 'avi' is not one of"),
    (lambda d: d["output"]["video"].update(quality=99), "quality 99 must be 0..51"),
    (lambda d: d["output"]["video"].update(audio={"path": "nope.wav"}), "audio.path 'nope.wav' is not among"),
    (lambda d: d["output"]["video"].update(fps_num=24.5), "fps_num must be a whole number"),
    (lambda d: d["output"].update(video=[]), "spec.output.video must be an object"),
    (lambda d: d["render"].update(engine="POVRAY"), "engine 'POVRAY' is not one of"),
    (lambda d: d["render"].update(device="TPU"), "device 'TPU' is not one of"),
    (lambda d: d["render"].update(threads=-1), "threads -1 must be 0"),
    (lambda d: d.pop("render"), "spec.render is missing"),
]


@pytest.mark.parametrize(("mutate", "fragment"), DEFECTS)
def test_every_defect_has_a_clear_message(mutate, fragment):
    with pytest.raises(JobSpecError) as err:
        JobSpec.from_dict(_mutated(mutate))
    assert fragment in str(err.value)


def test_not_json_and_not_an_object():
    with pytest.raises(JobSpecError, match="not valid JSON"):
        JobSpec.from_json("{truncated")
    with pytest.raises(JobSpecError, match="must be a JSON object"):
        JobSpec.from_json(json.dumps([1, 2]))


def test_optional_video_and_defaults():
    data = make_spec().to_dict()
    data["output"]["video"] = None
    del data["extra"]
    del data["source_name"]
    spec = JobSpec.from_dict(data)
    assert spec.output.video is None
    assert spec.source_name == ""


def test_retry_specs_name_progress_records_by_the_original_slice():
    spec = make_spec()
    assert [spec.original_slice(i) for i in range(3)] == [0, 1, 2]
    retry = make_spec(slices=[[4, 5, 6], [7, 8]], extra={"retry_of_slices": "1,2"})
    retry.validate()
    assert retry.original_slice(0) == 1 and retry.original_slice(1) == 2
    assert retry.progress_record_uri(retry.original_slice(1)).endswith("progress/slice-00002.json")
    for bad in ("1", "1,x", "1,,2"):
        broken = make_spec(slices=[[4, 5, 6], [7, 8]], extra={"retry_of_slices": bad})
        with pytest.raises(JobSpecError, match="retry_of_slices"):
            JobSpec.from_dict(broken.to_dict())

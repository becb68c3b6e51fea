"""A steady status refresh of an AWS submission costs at most 3 calls whatever the frame
count, and its count of frames done stays right (moto in this process over real HTTP:
the test drives the children's states and writes frames straight into moto's S3)."""

from __future__ import annotations

import pytest

from addon.core.aws.session import AwsSettings, client
from addon.core.backends.aws_batch.following import STEADY_CALLS
from addon.core.frames import chunk_frames
from tests.frame_images import png_bytes
from tests.test_aws_batch_states import ACCOUNT, moto_job, set_states
from tests.test_aws_batch_support import BUCKET, CallCounter, clients_of, create_batch_env, write_spec

FRAMES = 10_000
CHUNK = 100  # 100 chunks


@pytest.fixture
def env(inproc_aws):
    settings = AwsSettings(region="us-east-1", endpoint_url=inproc_aws)
    client("s3", settings).create_bucket(Bucket=BUCKET)
    return create_batch_env(settings)


def drop_frames(spec, frames) -> None:
    """Frames straight into moto's S3 (10,000 puts over HTTP would take minutes)."""
    from moto.s3.models import s3_backends

    s3 = s3_backends[ACCOUNT]["aws"]
    body = png_bytes(1, 1)  # big enough to count as a done frame (addon.core.framecheck)
    for f in frames:
        key = spec.frame_uri(f).split(f"s3://{BUCKET}/", 1)[1]
        s3.put_object(BUCKET, key, body)


def start(env, frames):
    slices = chunk_frames(frames, chunk_size=CHUNK)
    spec, spec_uri = write_spec(env.settings, submission_id=f"refresh-{len(frames)}", slices=slices)
    backend = env.backend(vcpus=4)
    record = backend.submit(spec, spec_uri)
    return spec, backend, record


def test_steady_refresh_is_constant_at_ten_thousand_frames(env):
    spec, backend, record = start(env, list(range(1, FRAMES + 1)))
    n = len(spec.slices)
    parent = record.jobs["render_job_id"]
    moto_job(record.jobs["stitch_job_id"]).status = "PENDING"
    # chunks 0..59 done, chunk 3 failed for good, 60..71 running with part of their frames
    states = ["SUCCEEDED"] * 60 + ["RUNNING"] * 12 + ["RUNNABLE"] * (n - 72)
    states[3] = "FAILED"
    set_states(parent, states)
    done = [f for i in range(60) if i != 3 for f in spec.slices[i]]
    drop_frames(spec, done)
    drop_frames(spec, [f for i in range(60, 72) for f in spec.slices[i][:40]])

    counter = CallCounter(*clients_of(backend))
    status = backend.status(record)
    assert status.frames_done == len(done) + 12 * 40
    assert status.failed_slices == [3]
    first = len(counter.calls)
    assert counter.calls.count("ListObjectsV2") == 7  # 6,380 keys: every page once

    expected = status.frames_done
    for step in range(3):  # the running chunks go on; the window moves up
        lo = 40 + step * 20
        new = [f for i in range(60, 72) for f in spec.slices[i][lo : lo + 20]]
        drop_frames(spec, new)
        expected += len(new)
        counter.reset()
        status = backend.status(record)
        assert len(counter.calls) <= STEADY_CALLS, counter.calls
        # the 12 running chunks hold up to 1,200 frames above the lowest open one: 1-2 pages
        assert counter.calls.count("ListObjectsV2") <= 2
        assert status.frames_done == expected
    assert first > STEADY_CALLS

    # a frame of a chunk that finished while nobody looked, far above the window, and the
    # failed chunk's frames, rendered by a retry: both are found
    states[80] = "SUCCEEDED"
    set_states(parent, states)
    drop_frames(spec, spec.slices[80])
    counter.reset()
    status = backend.status(record)
    assert status.frames_done == expected + CHUNK
    assert len(counter.calls) <= STEADY_CALLS


def test_listing_jumps_over_seen_keys_to_the_next_open_frame(env):
    """A chunk stuck early (its frames missing) while 3,000 later frames are done: the
    lister does not page through the seen keys again."""
    spec, backend, record = start(env, list(range(1, 5001)))
    parent = record.jobs["render_job_id"]
    moto_job(record.jobs["stitch_job_id"]).status = "PENDING"
    states = ["RUNNING"] + ["SUCCEEDED"] * 30 + ["RUNNING"] + ["RUNNABLE"] * 18
    set_states(parent, states)
    drop_frames(spec, [f for i in range(1, 31) for f in spec.slices[i]])
    counter = CallCounter(*clients_of(backend))
    assert backend.status(record).frames_done == 3000
    drop_frames(spec, spec.slices[31][:10] + spec.slices[0][:5])
    counter.reset()
    status = backend.status(record)
    assert status.frames_done == 3015
    assert counter.calls.count("ListObjectsV2") <= 2, counter.calls
    assert len(counter.calls) <= STEADY_CALLS


def test_negative_frames_in_key_order_and_settled_listing(env):
    """Key order is not numeric order for negative frames ('frame_-00010' sorts after
    'frame_-00005'); once every job ended and was listed, refreshes list nothing."""
    spec, backend, record = start(env, list(range(-250, 251)))
    parent = record.jobs["render_job_id"]
    moto_job(record.jobs["stitch_job_id"]).status = "PENDING"
    set_states(parent, ["RUNNING"] * len(spec.slices))
    drop_frames(spec, [-250, -10, 0, 7])
    assert backend.status(record).frames_done == 4
    drop_frames(spec, [-249, -5, -1, 1, 250])
    assert backend.status(record).frames_done == 9
    drop_frames(spec, [f for f in spec.frames if f != 100])
    set_states(parent, ["SUCCEEDED"] * len(spec.slices), parent_state="SUCCEEDED")
    counter = CallCounter(*clients_of(backend))
    assert backend.status(record).frames_done == 500
    counter.reset()
    assert backend.status(record).frames_done == 500
    assert "ListObjectsV2" not in counter.calls  # every job had ended before the last listing
    # a job running again (as a retry's would) reopens the listing
    set_states(parent, ["RUNNING"] * len(spec.slices))
    drop_frames(spec, [100])
    counter.reset()
    assert backend.status(record).frames_done == 501
    assert counter.calls.count("ListObjectsV2") == 1

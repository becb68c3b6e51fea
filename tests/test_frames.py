"""Frame parsing, chunking and array sizing: examples, every bad input, and properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from addon.core.errors import FrameRangeError
from addon.core.frames import (
    MAX_ARRAY_SIZE,
    array_plan,
    chunk_frames,
    describe_frames,
    frame_range,
    frames_for_index,
    parse_frames,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1-5", [1, 2, 3, 4, 5]),
        ("1-10,20,30-40x2", [*range(1, 11), 20, 30, 32, 34, 36, 38, 40]),
        ("7", [7]),
        (" 3 - 6 , 1 ", [1, 3, 4, 5, 6]),
        ("1-5,3-7", [1, 2, 3, 4, 5, 6, 7]),  # named twice, rendered once
        ("0-4x2", [0, 2, 4]),
        ("1-250", list(range(1, 251))),
    ],
)
def test_parse_frames(text, expected):
    assert parse_frames(text) == expected


def test_parse_frames_default_step_applies_to_plain_ranges_only():
    assert parse_frames("1-9,20-24x1", step=4) == [1, 5, 9, 20, 21, 22, 23, 24]


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "No frames given"),
        ("   ", "No frames given"),
        ("1-10,,20", "Empty item"),
        ("abc", "Cannot read 'abc'"),
        ("1-10x0", "step in '1-10x0' must be 1 or more"),
        ("10-1", "runs backwards; write it as '1-10'"),
        ("1-", "Cannot read '1-'"),
        ("99999999", "outside Blender's frame limits"),
        ("-3--1", "outside Blender's frame limits (0..1048574)"),
        ("1.5", "Cannot read '1.5'"),
    ],
)
def test_parse_frames_rejects_bad_input_with_a_useful_message(text, fragment):
    with pytest.raises(FrameRangeError) as err:
        parse_frames(text)
    assert fragment in str(err.value)


def test_frame_range():
    assert frame_range(1, 10, 3) == [1, 4, 7, 10]
    with pytest.raises(FrameRangeError, match="empty: the end frame is before the start"):
        frame_range(10, 1)
    with pytest.raises(FrameRangeError, match="step must be a whole number of 1 or more"):
        frame_range(1, 10, 0)
    with pytest.raises(FrameRangeError, match="must be a whole number"):
        frame_range(1.0, 10)  # type: ignore[arg-type]


def test_chunk_by_size_and_count():
    frames = list(range(1, 11))
    assert chunk_frames(frames, chunk_size=4) == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
    assert chunk_frames(frames, chunk_count=3) == [[1, 2, 3, 4], [5, 6, 7], [8, 9, 10]]
    assert chunk_frames(frames, chunk_count=50) == [[f] for f in frames]


def test_chunk_grows_to_respect_the_array_limit():
    frames = list(range(25_000))
    slices = chunk_frames(frames, chunk_size=1)
    assert len(slices) <= MAX_ARRAY_SIZE
    assert [f for s in slices for f in s] == frames


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"frames": [1, 2], "chunk_size": 0}, "Chunk size must be 1 frame or more"),
        ({"frames": [1, 2], "chunk_count": 0}, "Chunk count must be 1 or more"),
        ({"frames": [], "chunk_size": 2}, "no frames to render"),
        ({"frames": [2, 1], "chunk_size": 2}, "sorted and unique"),
        ({"frames": [1, 2], "chunk_size": 1, "chunk_count": 1}, "not both"),
        ({"frames": [1, 2]}, "not both or neither"),
    ],
)
def test_chunk_bad_input(kwargs, fragment):
    with pytest.raises(FrameRangeError, match=fragment):
        chunk_frames(**kwargs)


def test_array_plan_single_chunk_is_a_plain_job():
    assert array_plan([[1, 2, 3]]).array_size is None
    assert not array_plan([[1, 2, 3]]).is_array
    assert array_plan([[1], [2]]).array_size == 2
    with pytest.raises(FrameRangeError, match="no slices"):
        array_plan([])
    with pytest.raises(FrameRangeError, match="limit of 10000"):
        array_plan([[i] for i in range(MAX_ARRAY_SIZE + 1)])


def test_frames_for_index():
    slices = [[1, 2], [3, 4], [5]]
    assert frames_for_index(slices, None) == [1, 2]  # plain job: no AWS_BATCH_JOB_ARRAY_INDEX
    assert frames_for_index(slices, "") == [1, 2]
    assert frames_for_index(slices, "2") == [5]
    with pytest.raises(FrameRangeError, match="outside this job's 3 slice"):
        frames_for_index(slices, 3)
    with pytest.raises(FrameRangeError, match="not a whole number"):
        frames_for_index(slices, "x")


def test_describe_frames_examples():
    assert describe_frames([1, 2, 3, 4, 5]) == "1-5"
    assert describe_frames([1, 3, 5, 7]) == "1-7x2"
    assert describe_frames([1, 5]) == "1,5"
    assert describe_frames([]) == ""


# --- properties ------------------------------------------------------------------------

frame_sets = st.lists(st.integers(0, 5000), min_size=1, max_size=400, unique=True).map(sorted)


@settings(max_examples=200, deadline=None)
@given(frames=frame_sets, size=st.integers(1, 60))
def test_every_frame_in_exactly_one_slice_by_size(frames, size):
    slices = chunk_frames(frames, chunk_size=size)
    assert [f for s in slices for f in s] == frames  # each once, in order
    assert all(s for s in slices)
    assert all(len(s) <= size for s in slices)
    assert len(slices) <= MAX_ARRAY_SIZE


@settings(max_examples=200, deadline=None)
@given(frames=frame_sets, count=st.integers(1, 500))
def test_every_frame_in_exactly_one_slice_by_count(frames, count):
    slices = chunk_frames(frames, chunk_count=count)
    assert [f for s in slices for f in s] == frames
    assert all(s for s in slices)
    assert len(slices) == min(count, len(frames))
    sizes = {len(s) for s in slices}
    assert max(sizes) - min(sizes) <= 1


@settings(max_examples=30, deadline=None)
@given(n=st.integers(9_000, 60_000), size=st.integers(1, 3))
def test_never_more_than_10000_slices(n, size):
    frames = list(range(n))
    slices = chunk_frames(frames, chunk_size=size)
    assert len(slices) <= MAX_ARRAY_SIZE
    assert sum(len(s) for s in slices) == n
    plan = array_plan(slices)
    assert plan.slice_count == len(slices)


@settings(max_examples=200, deadline=None)
@given(frames=frame_sets)
def test_describe_then_parse_round_trips(frames):
    assert parse_frames(describe_frames(frames)) == frames


@settings(max_examples=100, deadline=None)
@given(frames=frame_sets, size=st.integers(1, 50))
def test_index_maps_to_its_slice(frames, size):
    slices = chunk_frames(frames, chunk_size=size)
    rebuilt = [f for i in range(len(slices)) for f in frames_for_index(slices, str(i))]
    assert rebuilt == frames

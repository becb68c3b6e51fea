"""The quote: chunk size and schedule arithmetic, Spot prices from the moto server's EC2
``DescribeSpotPriceHistory``, on-demand prices from the Price List API (botocore's Stubber,
moto has no ``pricing``), the scout render in a real child Blender, and the CLI."""

from __future__ import annotations

import json

import pytest

from addon.cli import main
from addon.core.aws.session import AwsSettings, client
from addon.core.exitcodes import CHECK_ERRORS
from addon.core.frames import chunk_frames
from addon.core.quote.model import (
    AWS_BOOT_S,
    AWS_CHUNK_OVERHEAD_S,
    LOCAL_CHUNK_OVERHEAD_S,
    Measured,
    auto_chunk_size,
    estimate,
    schedule_seconds,
)
from addon.core.quote.prices import (
    FALLBACK_ON_DEMAND_PER_VCPU_HOUR,
    FALLBACK_SOURCE,
    instance_types_for,
    on_demand_prices,
    spot_prices,
    type_vcpus,
)
from addon.core.quote.scout import scout_frames, scout_render

# --- arithmetic -----------------------------------------------------------------------------


def test_auto_chunk_size_keeps_start_up_under_ten_percent():
    size, why = auto_chunk_size(frames=10_000, load_seconds=30, seconds_per_frame=10, parallel=12)
    # 30 s <= 10% of 30 frames of 10 s; 250 chunks of 40 (not 333 of 30 and a last one of 10)
    assert size == 40 and "10%" in why
    sizes = [len(c) for c in chunk_frames(list(range(10_000)), chunk_size=size)]
    assert min(sizes) >= 30
    # so every chunk's wall time is within 1.10 x its frames' render time (bench/chunk_efficiency.py's target)
    assert max((30 + n * 10) / (n * 10) for n in sizes) <= 1.10
    # 120 fast frames after a 1.8 s start-up: one chunk (1.08), not 81 + 39 frames (1.11 and 1.23)
    assert auto_chunk_size(120, 1.8, 0.2, parallel=1)[0] == 120
    assert auto_chunk_size(200, 1.8, 0.2, parallel=1)[0] == 100
    assert auto_chunk_size(120, 1.8, 0.2, parallel=2)[0] == 60  # enough chunks for 2 slots wins
    # 97 frames (prime): no size from 90 on leaves a last chunk of 90+: one chunk
    assert auto_chunk_size(97, 1.8, 0.2, parallel=1)[0] == 97


def test_auto_chunk_size_limits():
    # slow frames, slow load: 10% would need 14 frames of 390 s; an hour holds 7 after a 600 s load
    assert auto_chunk_size(1000, 600, 390, parallel=4) == (7, "chunks of at most 60 min (a Spot reclaim loses little)")
    # enough chunks for every slot
    size, why = auto_chunk_size(100, 60, 1, parallel=20)
    assert size == 5 and "20 at once" in why
    # at most 10,000 chunks
    size, why = auto_chunk_size(50_000, 0.1, 10, parallel=50_000)
    assert size == 5 and "10,000" in why
    assert auto_chunk_size(3, 100, 1, parallel=1)[0] == 3


def test_schedule_and_estimate():
    wall, busy = schedule_seconds(frames=25, chunk_size=10, load_s=5, frame_s=1, parallel=2)
    assert busy == 3 * 5 + 25 and wall == 15 + 10  # chunks of 15, 15, 10 s on two slots
    m = Measured(load_seconds=5, seconds_per_frame=2, peak_rss_mib=500, threads=2)
    local = estimate(m, 48, parallel=1, job_threads=2, chunk_size=12)
    # each chunk: 5 s start-up+load, the worker's own time, 12 frames of 2 s
    assert local.cost is None and local.chunks == 4
    assert local.wall_seconds == pytest.approx(4 * (5 + LOCAL_CHUNK_OVERHEAD_S + 24))
    assert f"+{LOCAL_CHUNK_OVERHEAD_S:.1f} s per chunk for the worker" in local.assumptions[-1]
    assert local.line() == "≈ 2 min (88 s–3 min) with 4 chunks of 12 frame(s), 1 at a time on this computer"
    aws = estimate(m, 48, parallel=4, job_threads=4, chunk_size=12, price_per_vcpu_hour=(0.02, 0.01, 0.03),
                   price_date="2026-12-01", aws=True)  # fmt: skip
    # 4 vCPUs per job: 1 s per frame; each chunk 5 + 20 (overhead) + 12 s, all four at once
    assert aws.wall_seconds == pytest.approx(150 + 37)
    assert aws.vcpu_hours == pytest.approx(4 * 37 * 4 / 3600)
    assert aws.cost == pytest.approx(aws.vcpu_hours * 0.02)
    assert aws.cost_low < aws.cost < aws.cost_high
    assert aws.line().endswith("with 4 chunks of 12 frame(s) on up to 4 instances · Spot prices of 2026-12-01")


def test_the_worker_time_per_chunk_takes_the_load_the_scout_saw():
    # idle: the scout's start-up took its CPU seconds; the worker's own time as measured idle
    idle = Measured(load_seconds=2, seconds_per_frame=0.2, peak_rss_mib=400, threads=2, alone_load_seconds=2)
    quote = estimate(idle, 100, parallel=1, job_threads=2, chunk_size=100)
    assert quote.wall_seconds == pytest.approx(2 + LOCAL_CHUNK_OVERHEAD_S + 20)
    # others kept the computer busy: the start-up took 2x its CPU seconds; the worker's own CPU
    # work (start, input copy and hash, frame checks) no longer overlaps on a free core: 2x too
    busy = Measured(load_seconds=4, seconds_per_frame=0.4, peak_rss_mib=400, threads=2, alone_load_seconds=2)
    quote = estimate(busy, 100, parallel=1, job_threads=2, chunk_size=100)
    assert quote.wall_seconds == pytest.approx(4 + 2 * LOCAL_CHUNK_OVERHEAD_S + 40)
    assert f"+{2 * LOCAL_CHUNK_OVERHEAD_S:.1f} s per chunk for the worker" in quote.assumptions[-1]
    assert "x2.0, the scout's start-up under load" in quote.assumptions[-1]
    # AWS instances render alone: their per-chunk time is the container's, whatever the load here
    aws = estimate(busy, 100, parallel=1, job_threads=2, chunk_size=100, aws=True)
    assert aws.wall_seconds == pytest.approx(150 + 2 + 20 + 40)


def test_frame_time_scales_with_threads_only_as_far_as_the_frame_ran_on_them():
    from addon.core.quote.model import frame_seconds_for

    def scout(wall: float, cpu: float) -> Measured:
        return Measured(load_seconds=2, seconds_per_frame=wall, peak_rss_mib=400, threads=2, cpu_per_frame=cpu)

    # heavy scene, fast frames: 0.2 s of wall and 0.2 s of CPU on 2 threads: all serial (sync,
    # BVH build), 8 vCPUs do not make it 4x faster
    assert frame_seconds_for(scout(0.2, 0.2), 8) == pytest.approx(0.2)
    # both threads busy all the frame: a linear speed-up
    assert frame_seconds_for(scout(0.2, 0.4), 8) == pytest.approx(0.05)
    # half and half: 1.5 CPU-s in 1 s on 2 threads = 0.5 s serial + 1.0 CPU-s spread
    assert frame_seconds_for(scout(1.0, 1.5), 8) == pytest.approx(0.5 + 1.0 / 8)
    assert frame_seconds_for(scout(1.0, 1.5), 1) == pytest.approx(1.5)
    # no CPU figure: linear, as before
    assert frame_seconds_for(scout(1.0, 0.0), 8) == pytest.approx(0.25)
    # the AWS quote of the serial scene uses it: 100 frames of 0.2 s, not 0.05 s
    aws = estimate(scout(0.2, 0.2), 100, parallel=1, job_threads=8, chunk_size=100, aws=True)
    assert aws.wall_seconds == pytest.approx(150 + 2 + 20 + 100 * 0.2)


def test_instance_types_for_families_and_types():
    assert instance_types_for(["c7i", "m6i.4xlarge", " optimal"], 8) == {"c7i.2xlarge": 8, "m6i.4xlarge": 16}
    assert instance_types_for(["c6a"], 3) == {"c6a.xlarge": 4}
    assert type_vcpus("c7i.large") == 2 and type_vcpus("m7i.24xlarge") == 96
    with pytest.raises(ValueError, match="exact size"):
        type_vcpus("c7i.metal")


# --- prices ---------------------------------------------------------------------------------


def test_spot_prices_from_moto(aws_settings):
    types = {"c6i.2xlarge": 8, "m5.2xlarge": 8}
    table = spot_prices(client("ec2", aws_settings), types)
    assert set(table.per_vcpu_hour) == set(types)
    # moto quotes 0.00001 per hour in each zone, dated 2006-01-02
    assert table.per_vcpu_hour["c6i.2xlarge"] == pytest.approx(0.00001 / 8)
    assert table.zones["c6i.2xlarge"] >= 2
    assert table.date == "2006-01-02" and table.source == "Spot"


PRODUCT = {
    "product": {"attributes": {"instanceType": "c6i.xlarge", "regionCode": "us-east-1"}},
    "terms": {"OnDemand": {"X.JRTCKXETXF": {"effectiveDate": "2026-11-01T00:00:00Z", "priceDimensions": {
        "X.JRTCKXETXF.6YS6EN2CT7": {"unit": "Hrs", "pricePerUnit": {"USD": "0.1700000000"}}}}}},
}  # fmt: skip


def test_on_demand_prices_from_the_price_list_api():
    from botocore.stub import Stubber

    pricing = client("pricing", AwsSettings(region="us-east-1"))
    with Stubber(pricing) as stub:
        stub.add_response("get_products", {"PriceList": [json.dumps(PRODUCT)], "FormatVersion": "aws_v1"})
        table = on_demand_prices(pricing, {"c6i.xlarge": 4}, "us-east-1")
        stub.assert_no_pending_responses()
    assert table.per_vcpu_hour == {"c6i.xlarge": pytest.approx(0.0425)}
    assert table.source == "on-demand" and table.date == "2026-11-01"


def test_on_demand_falls_back_when_refused():
    from botocore.stub import Stubber

    pricing = client("pricing", AwsSettings(region="us-east-1"))
    with Stubber(pricing) as stub:
        stub.add_client_error("get_products", "AccessDeniedException", "not authorized to pricing:GetProducts")
        table = on_demand_prices(pricing, {"c6i.xlarge": 4, "m6i.xlarge": 4}, "eu-west-1")
    assert table.source == FALLBACK_SOURCE
    assert table.per_vcpu_hour == {
        "c6i.xlarge": FALLBACK_ON_DEMAND_PER_VCPU_HOUR,
        "m6i.xlarge": FALLBACK_ON_DEMAND_PER_VCPU_HOUR,
    }


# --- scout and CLI --------------------------------------------------------------------------


def test_scout_frames():
    assert scout_frames(1, 250) == [1, 126, 250]
    assert scout_frames(1, 2) == [1, 2]
    assert scout_frames(10, 20, 5) == [10, 15, 20]


def test_scout_render_measures_a_real_blender(tiny_scene):
    before = tiny_scene.read_bytes()
    m = scout_render(tiny_scene, [1, 12, 24], engine="CYCLES")
    assert m.frames == [1, 12, 24]
    assert 0 < m.seconds_per_frame < 30
    assert 0.5 < m.load_seconds < 120  # importing bpy and opening the file takes a while
    assert 100 < m.peak_rss_mib < 8000  # a Blender, not this test process
    assert tiny_scene.read_bytes() == before
    assert sorted(p.name for p in tiny_scene.parent.iterdir()) == ["tiny.blend"]  # nothing written beside it
    # alone: less only the CPU other programs took meanwhile
    assert 0 < m.alone().seconds_per_frame <= m.seconds_per_frame and m.others_cores >= 0
    assert 0 < m.alone().load_seconds <= m.load_seconds


def test_the_scout_start_up_is_not_lost_when_later_frames_are_slower():
    from addon.core.quote.scout import load_and_frame_seconds

    # (seconds since start, render s, ...): first frame 1.5 s (0.5 s of it a first-frame extra)
    # written at 4.0 s, later frames 1 s: start-up 3 s, the extra counted with it
    assert load_and_frame_seconds([(4.0, 1.5, 0, None), (5.0, 1.0, 0, None), (6.0, 1.0, 0, None)]) == (3.0, 1.0)
    # the computer got busy after the first frame (1 s), later frames took 6 s: the start-up
    # before that first frame (3 s) stays; it read 0 s before, and the chunks were sized 1 frame
    load, frame_s = load_and_frame_seconds([(4.0, 1.0, 0, None), (10.0, 6.0, 0, None), (16.0, 6.0, 0, None)])
    assert (load, frame_s) == (3.0, 6.0)


def test_the_scout_takes_out_other_programs_load():
    from addon.core.quote.scout import alone_factor, busy_core_seconds

    # (seconds since start, render s, child CPU s, computer busy core-seconds)
    # 10 s: the child got 5 CPU seconds (half a core), others 15 (1.5 cores) of 2 cores: alone,
    # with 2 threads, the child would have had both: 4x faster
    factor, others = alone_factor([(2.0, 1.0, 3.0, 100.0), (12.0, 1.0, 8.0, 120.0)], threads=2)
    assert factor == pytest.approx(0.25) and others == pytest.approx(1.5)
    # a single-threaded child on a busy computer gains at most its one core
    factor, _ = alone_factor([(2.0, 1.0, 3.0, 100.0), (12.0, 1.0, 8.0, 120.0)], threads=1)
    assert factor == pytest.approx(0.5)
    # an idle computer: nothing to take out; no /proc/stat: as timed
    assert alone_factor([(2.0, 1.0, 3.0, 100.0), (12.0, 1.0, 23.0, 120.0)], threads=2) == (1.0, 0.0)
    assert alone_factor([(2.0, 1.0, 3.0, None), (12.0, 1.0, 8.0, None)], threads=2) == (1.0, 0.0)
    busy = busy_core_seconds()
    assert busy is not None and busy > 0  # Linux: /proc/stat


def test_aws_quotes_use_the_scout_alone_local_quotes_as_timed():
    m = Measured(load_seconds=4, seconds_per_frame=8, peak_rss_mib=300, threads=2, alone_load_seconds=2,
                 alone_seconds_per_frame=2, others_cores=1.5)  # fmt: skip
    local = estimate(m, 10, parallel=1, job_threads=2, chunk_size=10)
    # the worker's own time slowed as the scout's start-up was (4 s timed, 2 s alone)
    assert local.wall_seconds == pytest.approx(4 + 2 * LOCAL_CHUNK_OVERHEAD_S + 10 * 8)
    assert "other programs kept 1.5 core(s) busy; assumed to go on" in local.assumptions[0]
    aws = estimate(m, 10, parallel=1, job_threads=2, chunk_size=10, price_per_vcpu_hour=(1, 1, 1), aws=True)
    assert aws.wall_seconds == pytest.approx(2 + AWS_CHUNK_OVERHEAD_S + 10 * 2 + AWS_BOOT_S)
    assert "2.00 s per frame with 2 thread(s) (timed 8.00 s while other programs kept 1.5" in aws.assumptions[0]


def test_estimate_cli_local_and_aws(tiny_scene, aws, capsys):
    assert main(["estimate", str(tiny_scene), "--backend", "local", "--frames", "1-12", "--chunk", "4"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("≈ ") and "with 3 chunks of 4 frame(s), 1 at a time on this computer" in out[0]
    assert "$" not in out[0]
    assert any(line.strip().startswith("scout on this computer") for line in out[1:])

    code = main(["estimate", str(tiny_scene), "--instance-types", "c6i,m5", "--vcpus", "4", "--max-vcpus", "16",
                 "--region", "us-east-1", "--endpoint-url", aws.endpoint, "--json"])  # fmt: skip
    assert code == 0
    quote = json.loads(capsys.readouterr().out)
    assert quote["frames"] == 24 and quote["parallel"] == 4
    assert quote["price_source"] == "Spot" and quote["price_date"] == "2006-01-02"
    assert quote["line"].startswith("≈ $") and "on up to 4 instances · Spot prices of 2006-01-02" in quote["line"]
    # moto has no Price List API: the documented fallback is named
    assert any(FALLBACK_SOURCE in a for a in quote["assumptions"])

    # the scout's peak memory against a chunk's memory: the preflight check's memory finding
    peak = quote["measured"]["peak_rss_mib"]
    assert peak > 50  # a Blender process: tens of MiB at least
    code = main(["estimate", str(tiny_scene), "--instance-types", "c6i", "--vcpus", "4", "--max-vcpus", "16",
                 "--region", "us-east-1", "--endpoint-url", aws.endpoint, "--memory", "8"])  # fmt: skip
    out, errs = capsys.readouterr()
    assert code == CHECK_ERRORS and out.startswith("≈ $")  # the quote is still shown
    finding = [line for line in errs.splitlines() if "MEMORY_OVER_LIMIT" in line]
    assert len(finding) == 1 and finding[0].startswith("error: ") and "a chunk gets 8 MiB" in finding[0], errs


def test_estimate_reads_the_stack_parameters(aws):
    from addon.cli import build_parser
    from addon.cli.estimate import _capacity

    template = {
        "Parameters": {
            k: {"Type": "String"} for k in ("SpotInstanceTypes", "SpotMaxVcpus", "RenderVcpus", "RenderMemoryMiB")
        },
        "Resources": {"Nothing": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {"Region": {"Value": "us-east-1"}},
    }
    settings = AwsSettings(region="us-east-1", endpoint_url=aws.endpoint)
    values = {"SpotInstanceTypes": "c6i,m6i.8xlarge", "SpotMaxVcpus": "64", "RenderVcpus": "16",
              "RenderMemoryMiB": "30000"}  # fmt: skip
    client("cloudformation", settings).create_stack(
        StackName="abr",
        TemplateBody=json.dumps(template),
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in values.items()],
    )
    args = build_parser().parse_args(["estimate", "x.blend", "--stack", "abr", "--endpoint-url", aws.endpoint])
    cap = _capacity(args, settings)
    assert (cap.instance_types, cap.max_vcpus, cap.job_vcpus, cap.region) == (
        ["c6i", "m6i.8xlarge"],
        64,
        16,
        "us-east-1",
    )
    assert cap.parallel == 4
    assert cap.job_memory_mib == 30000  # the scout's peak memory is checked against it
    args = build_parser().parse_args(["estimate", "x.blend", "--stack", "nope", "--endpoint-url", aws.endpoint])
    with pytest.raises(Exception, match="nope"):
        _capacity(args, settings)


def test_estimate_aws_needs_stack_or_types(tiny_scene, capsys):
    assert main(["estimate", str(tiny_scene), "--region", "us-east-1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--stack NAME" in err[0]


def test_submit_chunk_auto_sizes_chunks_from_a_scout_render(aws_settings, s3_bucket, tiny_scene, tmp_path, capsys):
    from tests.test_aws_batch_support import RENDER_DEF, STITCH_DEF, create_batch_env

    env = create_batch_env(aws_settings)
    code = main([
        "submit", str(tiny_scene), "--chunk", "auto", "--vcpus", "64", "--bucket", s3_bucket,
        "--queue", env.queue_arn, "--job-definition", RENDER_DEF, "--stitch-job-definition", STITCH_DEF,
        "--endpoint-url", aws_settings.endpoint_url, "--region", "us-east-1", "--records", str(tmp_path / "r"),
    ])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    # 256 vCPUs / 64 per job = 4 at once; start-up dwarfs a frame at 64 vCPUs: 24 frames in 4 chunks
    assert "Chunk size 6: enough chunks for 4 at once" in err
    assert "24 frame(s) in 4 chunk(s)" in out

    # a chunk memory below the scout's peak: the preflight check stops the submit before any upload
    before = sorted(o["Key"] for o in client("s3", aws_settings).list_objects_v2(Bucket=s3_bucket).get("Contents", []))
    code = main([
        "submit", str(tiny_scene), "--chunk", "auto", "--vcpus", "64", "--memory", "8", "--bucket", s3_bucket,
        "--queue", env.queue_arn, "--job-definition", RENDER_DEF, "--stitch-job-definition", STITCH_DEF,
        "--endpoint-url", aws_settings.endpoint_url, "--region", "us-east-1", "--records", str(tmp_path / "r2"),
    ])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == CHECK_ERRORS and "MEMORY_OVER_LIMIT" in err and "Submitted" not in out, err
    after = sorted(o["Key"] for o in client("s3", aws_settings).list_objects_v2(Bucket=s3_bucket).get("Contents", []))
    assert after == before  # nothing uploaded


def test_a_split_still_is_quoted_as_parts_and_a_merge():
    from addon.core.quote.model import MERGE_PART_S

    m = Measured(load_seconds=10, seconds_per_frame=400, peak_rss_mib=300, threads=8)
    whole = estimate(m, 1, parallel=8, job_threads=8, price_per_vcpu_hour=(0.036, 0.03, 0.04), aws=True)
    split = estimate(m, 1, parallel=8, job_threads=8, price_per_vcpu_hour=(0.036, 0.03, 0.04), aws=True,
                     split_samples=4)  # fmt: skip
    assert (split.chunks, split.chunk_size, split.split_samples) == (4, 1, 4)
    load = 10 + AWS_CHUNK_OVERHEAD_S
    merge = load + 4 * MERGE_PART_S
    # 4 parts of 100 s each at once, then the merge; billed: 4 x (load + 100 s) + the merge
    assert split.wall_seconds == pytest.approx(load + 100 + merge + AWS_BOOT_S)
    assert split.vcpu_hours == pytest.approx((4 * (load + 100) + merge) * 8 / 3600)
    assert split.wall_seconds < whole.wall_seconds and split.cost > whole.cost  # sooner, dearer
    assert "4 parts (4 per frame) and a merge" in split.line()
    assert any("each rendering 1/4 of the samples" in a for a in split.assumptions)


def test_estimate_cli_quotes_a_split_still_and_refuses_a_bad_one(tiny_scene, capsys):
    code = main(["estimate", str(tiny_scene), "--backend", "local", "--frames", "5", "--split-samples", "2"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "2 parts (2 per frame) and a merge" in out
    # the tiny scene renders 4 samples: 8 parts would leave some without a sample
    code = main(["estimate", str(tiny_scene), "--backend", "local", "--frames", "5", "--split-samples", "8"])
    out, err = capsys.readouterr()
    assert code != 0 and "Scout render" not in err and len(err.strip().splitlines()) <= 2, err

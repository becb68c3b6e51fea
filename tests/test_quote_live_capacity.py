"""Chunks at once on AWS from the live compute environment (moto server over HTTP): the
deployed stack's compute environments and job definition, read as they are now, and the
template's figures with the quote saying so where they cannot be read."""

from __future__ import annotations

from addon.cli import build_parser
from addon.cli.estimate import _capacity
from addon.core.aws import deploy
from addon.core.aws.session import AwsSettings, client
from addon.core.quote.live_capacity import read_live
from addon.core.quote.quoting import (
    DEFAULT_JOB_VCPUS,
    DEFAULT_MAX_VCPUS,
    live_aws_capacity,
    measured_chunk,
    scene_frames,
)
from addon.core.quote.request import aws_capacity

STACK = "abr-live"


def _spot_env(batch) -> dict:
    queue = batch.describe_job_queues()["jobQueues"][0]
    arns = [e["computeEnvironment"] for e in queue["computeEnvironmentOrder"]]
    envs = batch.describe_compute_environments(computeEnvironments=arns)["computeEnvironments"]
    return next(e for e in envs if e["computeResources"]["type"] == "SPOT")


def test_the_quote_reads_the_live_compute_environment_not_the_stack_parameters(aws_settings, tiny_scene):
    params = {"SpotMaxVcpus": "64", "OnDemandMaxVcpus": "0", "RenderVcpus": "8"}
    out = deploy.deploy_stack(STACK, aws_settings, parameters=params, poll_seconds=0).outputs
    batch = client("batch", aws_settings)
    spot = _spot_env(batch)
    assert spot["computeResources"]["maxvCpus"] == 64
    # an on-demand environment added to the queue in the console after the deploy: the stack's
    # parameters still say 64 Spot vCPUs and no on-demand ones
    res = spot["computeResources"]
    extra = batch.create_compute_environment(
        computeEnvironmentName="abr-added", type="MANAGED", state="ENABLED", serviceRole=spot.get("serviceRole", ""),
        computeResources={"type": "EC2", "minvCpus": 0, "maxvCpus": 96, "instanceTypes": ["c6i"],
                          "subnets": res["subnets"], "securityGroupIds": res["securityGroupIds"],
                          "instanceRole": res["instanceRole"]},
    )["computeEnvironmentArn"]  # fmt: skip
    batch.update_job_queue(
        jobQueue=out.job_queue,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": spot["computeEnvironmentArn"]},
                                 {"order": 2, "computeEnvironment": extra}],
    )  # fmt: skip
    # a new revision of the render job definition with 16 vCPUs (newest ACTIVE revision wins)
    old = batch.describe_job_definitions(jobDefinitions=[out.render_job_definition])["jobDefinitions"][0]
    props = dict(old["containerProperties"])
    props.pop("vcpus", None)
    props.pop("memory", None)
    props["resourceRequirements"] = [{"type": "VCPU", "value": "16"}, {"type": "MEMORY", "value": "8192"}]
    batch.register_job_definition(
        jobDefinitionName=old["jobDefinitionName"], type="container", containerProperties=props
    )

    live = read_live(aws_settings, out.job_queue, old["jobDefinitionName"])
    assert (live.max_vcpus, live.job_vcpus, live.notes) == (160, 16, ())

    # the panel's Estimate: the stack's outputs lead to its queue and job definition
    cap = aws_capacity(aws_settings, STACK, job_definition=old["jobDefinitionName"])
    assert (cap.max_vcpus, cap.job_vcpus, cap.parallel) == (160, 16, 10)
    assert cap.source == "160 vCPUs of the live compute environment(s), 16 per job from the job definition"

    # the CLI's estimate --stack: live ceiling; the stack's render job definition (revision 1: 8 vCPUs)
    args = build_parser().parse_args(
        ["estimate", "x.blend", "--stack", STACK, "--endpoint-url", aws_settings.endpoint_url]
    )
    cap = _capacity(args, aws_settings)
    assert (cap.max_vcpus, cap.parallel) == (160, 160 // cap.job_vcpus)
    assert "160 vCPUs of the live compute environment(s)" in cap.source
    # an explicit figure still wins, and the quote says it was given
    args = build_parser().parse_args(
        ["estimate", "x.blend", "--stack", STACK, "--max-vcpus", "32", "--endpoint-url", aws_settings.endpoint_url]
    )
    cap = _capacity(args, aws_settings)
    assert cap.max_vcpus == 32 and cap.source.endswith("--max-vcpus 32 given")

    # submit --chunk auto and the panel's Auto Chunks: a scout render, sized for 160 / 16 = 10 jobs at once
    snapshot, frames = scene_frames(tiny_scene, "", "")
    size, why, _m = measured_chunk(
        "aws", tiny_scene, snapshot, frames, settings=aws_settings, job_queue=out.job_queue,
        job_definition=old["jobDefinitionName"],
    )  # fmt: skip
    assert size == -(-len(frames) // 10) and why.startswith("enough chunks for 10 at once"), why
    assert why.endswith(
        "[10 jobs at once: 160 vCPUs of the live compute environment(s), 16 per job from the job definition]"
    )

    # a disabled compute environment runs nothing: it does not count
    batch.update_compute_environment(computeEnvironment=extra, state="DISABLED")
    assert read_live(aws_settings, out.job_queue, "").max_vcpus == 64
    batch.update_compute_environment(computeEnvironment=spot["computeEnvironmentArn"], state="DISABLED")
    live = read_live(aws_settings, out.job_queue, "")
    assert live.max_vcpus == 0 and live.notes and "not found or not enabled" in live.notes[0]


def test_without_a_readable_compute_environment_the_template_figures_are_used_and_said(aws_settings):
    # no queue known at all (no stack, nothing connected)
    cap = live_aws_capacity(aws_settings)
    assert (cap.max_vcpus, cap.job_vcpus) == (DEFAULT_MAX_VCPUS, DEFAULT_JOB_VCPUS)
    assert cap.source == (
        f"{DEFAULT_MAX_VCPUS} vCPUs from the stack template's defaults, {DEFAULT_JOB_VCPUS} per job from the stack "
        "template's defaults (no job queue known)"
    )
    # a queue that does not exist here
    arn = "arn:aws:batch:us-east-1:123456789012:job-queue/gone"
    cap = live_aws_capacity(aws_settings, arn, "")
    assert cap.max_vcpus == DEFAULT_MAX_VCPUS and "gone not found or not enabled" in cap.source
    # AWS cannot be reached (a closed port): the quote still comes, from the template's figures
    closed = AwsSettings(region="us-east-1", endpoint_url="http://127.0.0.1:9")
    cap = live_aws_capacity(closed, arn, "abr-render")
    assert (cap.max_vcpus, cap.job_vcpus) == (DEFAULT_MAX_VCPUS, DEFAULT_JOB_VCPUS)
    assert "could not read gone: EndpointConnectionError" in cap.source
    assert "could not read abr-render: EndpointConnectionError" in cap.source

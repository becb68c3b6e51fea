"""The stack against a real moto server over HTTP: create, read outputs (what Connect
and --stack use), deploy → unchanged deploy → destroy, the bucket guard, and the CLI."""

from __future__ import annotations

import ast
import json

import pytest

from addon.cli import main
from addon.core.aws import deploy, destroy, stack, stack_events
from addon.core.aws.session import client

STACK = "abr-test"
MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"


def _events(sink: list):
    return sink.append


@pytest.fixture
def vpc_params(aws_settings) -> dict[str, str]:
    """An existing VPC and subnets, as deploy parameters.

    Stacks that are destroyed again use it: moto cannot delete the internet gateway
    attachment of a VPC the stack created itself (real CloudFormation can), so the
    round trips run the stack's existing-VPC path, which is just as real.
    """
    ec2 = client("ec2", aws_settings)
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{i}.0/24")["Subnet"]["SubnetId"] for i in range(2)]
    return {"VpcId": vpc, "SubnetIds": ",".join(subnets)}


def test_stack_creates_and_outputs_are_read(aws_settings):
    events: list[stack_events.StackEvent] = []
    result = deploy.deploy_stack(STACK, aws_settings, on_event=_events(events), poll_seconds=0)
    assert result.action == "created"
    out = result.outputs
    assert out == stack.read_stack_outputs(STACK, aws_settings)
    assert out.region == "us-east-1"
    assert out.job_queue.startswith("arn:aws:batch:us-east-1:") and ":job-queue/" in out.job_queue
    assert ":job-definition/" in out.render_job_definition
    assert ":job-definition/" in out.stitch_job_definition
    assert out.repository_uri.endswith(f"/{STACK}-worker")
    assert out.log_group == f"/aws-batch-render/{STACK}"
    assert out.gpu_job_queue == ""  # GPU off by default
    assert out.image_tags == ()
    assert events and events[-1].status == "CREATE_COMPLETE"

    # the outputs name real resources
    s3 = client("s3", aws_settings)
    s3.head_bucket(Bucket=out.bucket)
    batch = client("batch", aws_settings)
    queue = batch.describe_job_queues(jobQueues=[out.job_queue])["jobQueues"][0]
    assert len(queue["computeEnvironmentOrder"]) == 2
    envs = batch.describe_compute_environments()["computeEnvironments"]
    spot = next(e for e in envs if e["computeResources"]["type"] == "SPOT")
    assert spot["computeResources"]["allocationStrategy"] == "SPOT_PRICE_CAPACITY_OPTIMIZED"
    assert spot["computeResources"]["minvCpus"] == 0
    jd = batch.describe_job_definitions(jobDefinitions=[out.render_job_definition])["jobDefinitions"][0]
    assert jd["containerProperties"]["command"] == ["render"]
    assert jd["containerProperties"]["image"] == f"{out.repository_uri}:blender-5.2"
    assert {"name": "AWS_DEFAULT_REGION", "value": "us-east-1"} in jd["containerProperties"]["environment"]
    assert jd["containerProperties"]["logConfiguration"]["options"]["awslogs-group"] == out.log_group
    rules = [
        {k: v.upper() if k == "action" else v for k, v in r.items()} for r in jd["retryStrategy"]["evaluateOnExit"]
    ]
    assert rules[:2] == [
        {"onStatusReason": "Host EC2*", "action": "RETRY"},
        {"onExitCode": "75", "action": "RETRY"},
    ]
    assert {r["action"] for r in rules[2:]} == {"EXIT"}
    # the deployed IAM policies: no S3 wildcard, S3 only on this bucket
    iam = client("iam", aws_settings)
    assert out.submitter_policy.startswith("arn:aws:iam::")
    policy = iam.get_policy(PolicyArn=out.submitter_policy)["Policy"]
    documents = [
        iam.get_policy_version(PolicyArn=out.submitter_policy, VersionId=policy["DefaultVersionId"])["PolicyVersion"][
            "Document"
        ]
    ]
    for role in iam.list_roles()["Roles"]:
        for name in iam.list_role_policies(RoleName=role["RoleName"])["PolicyNames"]:
            documents.append(iam.get_role_policy(RoleName=role["RoleName"], PolicyName=name)["PolicyDocument"])
    s3_resources = set()
    for doc in documents:
        if isinstance(doc, str):  # moto keeps CloudFormation inline policies as Python reprs
            doc = json.loads(doc) if doc.startswith('{"') else ast.literal_eval(doc)
        for st in doc["Statement"]:
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            resources = st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]
            if any(a.startswith("s3:") for a in actions):
                assert not any("*" in a for a in actions), st
                s3_resources.update(resources)
    assert s3_resources == {f"arn:aws:s3:::{out.bucket}", f"arn:aws:s3:::{out.bucket}/*"}
    logs = client("logs", aws_settings).describe_log_groups(logGroupNamePrefix=out.log_group)["logGroups"]
    assert logs[0]["retentionInDays"] == 30


def test_image_tags_come_from_the_repository(aws_settings):
    out = deploy.deploy_stack(STACK, aws_settings, poll_seconds=0).outputs
    ecr = client("ecr", aws_settings)
    name = out.repository_uri.split("/", 1)[1]
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "size": 2,
                "digest": "sha256:" + "c" * 64,
            },
            "layers": [],
        }
    )
    for tag in ("blender-5.2", "blender-5.2-0123456789ab"):
        ecr.put_image(repositoryName=name, imageManifest=manifest, imageManifestMediaType=MEDIA_TYPE, imageTag=tag)
    assert stack.read_stack_outputs(STACK, aws_settings).image_tags == ("blender-5.2", "blender-5.2-0123456789ab")


def test_gpu_and_existing_vpc_parameters(aws_settings, vpc_params):
    ec2 = client("ec2", aws_settings)
    subnets = vpc_params["SubnetIds"].split(",")
    params = {**vpc_params, "EnableGpu": "true", "RetryAttempts": "5"}
    out = deploy.deploy_stack(STACK, aws_settings, parameters=params, poll_seconds=0).outputs
    assert ":job-queue/" in out.gpu_job_queue and out.gpu_job_queue != out.job_queue
    batch = client("batch", aws_settings)
    for env in batch.describe_compute_environments()["computeEnvironments"]:
        assert sorted(env["computeResources"]["subnets"]) == sorted(subnets)
    jd = batch.describe_job_definitions(jobDefinitions=[out.stitch_job_definition])["jobDefinitions"][0]
    assert jd["retryStrategy"]["attempts"] == 5
    # no VPC of the stack's own was made
    assert len(ec2.describe_vpcs(Filters=[{"Name": "cidr", "Values": ["10.42.0.0/16"]}])["Vpcs"]) == 0


def test_deploy_unchanged_is_a_no_op_and_keeps_parameters(aws_settings):
    first = deploy.deploy_stack(STACK, aws_settings, parameters={"SpotMaxVcpus": "64"}, poll_seconds=0)
    assert first.parameters["SpotMaxVcpus"] == "64"
    cfn = client("cloudformation", aws_settings)
    before = cfn.describe_stack_events(StackName=STACK)["StackEvents"]
    again = deploy.deploy_stack(STACK, aws_settings, poll_seconds=0)
    assert again.action == "unchanged"
    # the value set before is kept, not reverted to the default 256
    assert again.parameters["SpotMaxVcpus"] == "64"
    assert again.outputs == first.outputs
    assert cfn.describe_stack_events(StackName=STACK)["StackEvents"] == before
    assert cfn.list_change_sets(StackName=STACK)["Summaries"] == []  # the empty change set is deleted


def test_update_goes_through_a_change_set_and_later_deploys_keep_it(aws_settings, vpc_params):
    deploy.deploy_stack(STACK, aws_settings, parameters=vpc_params, poll_seconds=0)
    events: list[stack_events.StackEvent] = []
    updated = deploy.deploy_stack(
        STACK, aws_settings, parameters={"EnableGpu": "true"}, on_event=events.append, poll_seconds=0
    )
    assert updated.action == "updated"
    assert updated.outputs.gpu_job_queue.startswith("arn:aws:batch:")
    assert [e.status for e in events] == ["UPDATE_IN_PROGRESS", "UPDATE_COMPLETE"]
    executed = client("cloudformation", aws_settings).list_change_sets(StackName=STACK)["Summaries"]
    assert [c["ExecutionStatus"] for c in executed] == ["EXECUTE_COMPLETE"]
    # no parameters given: GPU stays on and the VPC stays the same (moto keeps comparing
    # with the parameters of the first create after a change-set update, so it cannot say
    # "unchanged" here; test_deploy_unchanged_is_a_no_op_and_keeps_parameters covers that)
    again = deploy.deploy_stack(STACK, aws_settings, poll_seconds=0)
    assert again.outputs.gpu_job_queue == updated.outputs.gpu_job_queue
    assert again.parameters["EnableGpu"] == "true"
    assert again.parameters["VpcId"] == vpc_params["VpcId"]


def test_deploy_rejects_unknown_parameter_and_bad_stack_name(aws_settings):
    with pytest.raises(stack.StackError, match="Unknown stack parameter NoSuch"):
        deploy.deploy_stack(STACK, aws_settings, parameters={"NoSuch": "1"}, poll_seconds=0)
    with pytest.raises(stack.StackError, match="lowercase"):
        deploy.deploy_stack("Render_Stack", aws_settings, poll_seconds=0)


def test_failed_create_reports_the_cause_in_one_line(aws, capsys):
    assert main(["deploy", "--stack", STACK, "--param", "SpotInstanceTypes=nosuch9", "--poll", "0"]) == 4
    err = capsys.readouterr().err
    assert err.startswith(f"error: Cannot create stack {STACK}") and "nosuch9 does not exist" in err
    assert "Traceback" not in err
    assert main(["deploy", "--stack", STACK, "--vpc", "vpc-0123"]) == 4
    assert "--vpc and --subnets go together" in capsys.readouterr().err


def test_read_missing_stack_says_to_deploy(aws_settings):
    with pytest.raises(stack.StackNotFoundError, match="aws-batch-render deploy --stack nope"):
        stack.read_stack_outputs("nope", aws_settings)


def test_destroy_refuses_non_empty_bucket_then_forces(aws_settings, vpc_params):
    out = deploy.deploy_stack(STACK, aws_settings, parameters=vpc_params, poll_seconds=0).outputs
    s3 = client("s3", aws_settings)
    for key in ("inputs/" + "a" * 64, "frames/sub-1/frame_0001.png", "submissions/sub-1/video/video.mp4"):
        s3.put_object(Bucket=out.bucket, Key=key, Body=b"x")

    with pytest.raises(stack.BucketNotEmptyError, match="--force") as refused:
        destroy.destroy_stack(STACK, aws_settings, poll_seconds=0)
    assert "3 objects" in str(refused.value)
    asked = []
    with pytest.raises(stack.BucketNotEmptyError, match="Not confirmed"):
        destroy.destroy_stack(
            STACK, aws_settings, force=True, confirm=lambda c: asked.append(c) or False, poll_seconds=0
        )
    assert asked[0].objects == 3
    # nothing was deleted by either refusal
    assert s3.list_objects_v2(Bucket=out.bucket)["KeyCount"] == 3
    assert stack.describe_stack(STACK, aws_settings) is not None

    result = destroy.destroy_stack(STACK, aws_settings, force=True, confirm=lambda c: True, poll_seconds=0)
    assert result.objects_deleted == 3
    assert stack.describe_stack(STACK, aws_settings) is None
    with pytest.raises(stack.StackNotFoundError):
        destroy.destroy_stack(STACK, aws_settings, poll_seconds=0)


def test_round_trip_deploy_unchanged_destroy_through_the_cli(aws, vpc_params, capsys):
    vpc = ["--vpc", vpc_params["VpcId"], "--subnets", vpc_params["SubnetIds"]]
    assert main(["deploy", "--stack", STACK, *vpc, "--poll", "0"]) == 0
    text = capsys.readouterr().out
    assert f"Stack {STACK} created." in text
    assert "CREATE_COMPLETE" in text
    for key in ("BucketName", "JobQueue", "RenderJobDefinition", "StitchJobDefinition", "RepositoryUri"):
        assert key in text
    assert "publish-image" in text

    assert main(["deploy", "--stack", STACK, "--poll", "0"]) == 0
    assert "up to date: nothing to change" in capsys.readouterr().out

    assert main(["deploy", "--stack", STACK, "--param", "Bogus=1"]) == 4
    assert "Unknown stack parameter Bogus" in capsys.readouterr().err

    assert main(["destroy", "--stack", STACK, "--poll", "0"]) == 0
    assert f"Stack {STACK} deleted." in capsys.readouterr().out
    assert main(["destroy", "--stack", STACK, "--poll", "0"]) == 4
    assert "No stack named 'abr-test'" in capsys.readouterr().err


def test_cli_destroy_with_objects_needs_force_and_yes(aws, vpc_params, capsys, monkeypatch):
    vpc = ["--vpc", vpc_params["VpcId"], "--subnets", vpc_params["SubnetIds"]]
    assert main(["deploy", "--stack", STACK, *vpc, "--poll", "0"]) == 0
    capsys.readouterr()
    from addon.core.aws.session import AwsSettings

    bucket = stack.read_stack_outputs(STACK, AwsSettings.from_env()).bucket
    client("s3", AwsSettings.from_env()).put_object(Bucket=bucket, Key="frames/x/frame_0001.png", Body=b"x")

    assert main(["destroy", "--stack", STACK, "--poll", "0"]) == 4
    assert "--force" in capsys.readouterr().err
    # --force without --yes on a non-interactive stdin does not delete
    monkeypatch.setattr("sys.stdin", open("/dev/null"))
    assert main(["destroy", "--stack", STACK, "--force", "--poll", "0"]) == 4
    assert "Not confirmed" in capsys.readouterr().err
    assert main(["destroy", "--stack", STACK, "--force", "--yes", "--poll", "0"]) == 0
    out = capsys.readouterr().out
    assert "Deleted 1 objects" in out and "deleted." in out

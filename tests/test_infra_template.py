"""The CloudFormation template itself: cfn-lint, least-privilege IAM, retry rules,
bucket protection and lifecycle, Spot settings, outputs. No AWS needed."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cfnlint.api import ManualArgs, lint_file
from cfnlint.decode import decode_str

from addon.core import exitcodes
from addon.core.aws.stack import MAX_TEMPLATE_BODY, REQUIRED_OUTPUTS, TEMPLATE_PATH
from addon.core.backends.aws_batch.job_requests import retry_strategy

TEXT = TEMPLATE_PATH.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def template() -> dict:
    data, errors = decode_str(TEXT)
    assert not errors, errors
    return data


def resources_of(template: dict, type_: str) -> dict[str, dict]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == type_}


def test_cfn_lint_is_clean():
    matches = lint_file(Path(TEMPLATE_PATH), ManualArgs(regions=["us-east-1", "eu-west-1"]))
    assert [str(m) for m in matches] == []


def test_every_suppressed_rule_carries_a_reason():
    lines = TEXT.splitlines()
    suppressions = [i for i, line in enumerate(lines) if "ignore_checks" in line]
    assert suppressions, "the template suppresses W1033 on purpose; this test must see it"
    for i in suppressions:
        above = lines[max(0, i - 4) : i]
        assert any(line.strip().startswith("#") and len(line.strip()) > 20 for line in above), lines[i]


def test_template_fits_inline_body():
    assert len(TEXT.encode()) < MAX_TEMPLATE_BODY


def _statements(template: dict):
    """Every IAM statement: inline role policies and managed policies."""
    for name, res in resources_of(template, "AWS::IAM::Role").items():
        for policy in res["Properties"].get("Policies", []):
            for st in policy["PolicyDocument"]["Statement"]:
                yield name, st
    for name, res in resources_of(template, "AWS::IAM::ManagedPolicy").items():
        for st in res["Properties"]["PolicyDocument"]["Statement"]:
            yield name, st


def _as_list(value) -> list:
    return value if isinstance(value, list) else [value]


def test_iam_has_no_wildcard_s3_action_or_resource(template):
    checked = 0
    for role, st in _statements(template):
        actions = _as_list(st["Action"])
        resources = _as_list(st["Resource"])
        for action in actions:
            assert action != "*" and not action.startswith("s3:*"), (role, action)
            assert not (action.startswith("s3:") and "*" in action), (role, action)
        if any(a.startswith("s3:") for a in actions):
            checked += 1
            for res in resources:
                assert res != "*", (role, st)
                # every S3 resource is this stack's bucket (or its objects), nothing broader
                text = json.dumps(res)
                assert "Bucket" in text, (role, res)
                assert "arn:aws:s3:::*" not in text
    assert checked == 4  # job role and submitter policy: objects, and the bucket


def test_job_role_reads_writes_objects_and_lists_only_this_bucket(template):
    role = template["Resources"]["JobRole"]["Properties"]
    statements = role["Policies"][0]["PolicyDocument"]["Statement"]
    by_action = {a: st["Resource"] for st in statements for a in _as_list(st["Action"])}
    assert by_action["s3:GetObject"] == {"Fn::Sub": "${Bucket.Arn}/*"}
    assert by_action["s3:PutObject"] == {"Fn::Sub": "${Bucket.Arn}/*"}
    assert by_action["s3:ListBucket"] == {"Fn::GetAtt": ["Bucket", "Arn"]}
    assert "ManagedPolicyArns" not in role
    principal = role["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"]
    assert principal == "ecs-tasks.amazonaws.com"


def test_roles_are_separate(template):
    roles = resources_of(template, "AWS::IAM::Role")
    assert {"InstanceRole", "ExecutionRole", "JobRole"} <= set(roles)
    for jd in resources_of(template, "AWS::Batch::JobDefinition").values():
        cp = jd["Properties"]["ContainerProperties"]
        assert cp["JobRoleArn"] == {"Fn::GetAtt": ["JobRole", "Arn"]}
        assert cp["ExecutionRoleArn"] == {"Fn::GetAtt": ["ExecutionRole", "Arn"]}
    profile = template["Resources"]["InstanceProfile"]["Properties"]["Roles"]
    assert profile == [{"Ref": "InstanceRole"}]
    # "*" resources only for calls without resource-level permissions
    stars: dict[str, list[str]] = {}
    for r, st in _statements(template):
        if "*" in _as_list(st["Resource"]):
            stars.setdefault(r, []).extend(_as_list(st["Action"]))
    assert stars == {
        "ExecutionRole": ["ecr:GetAuthorizationToken"],
        "SubmitterPolicy": [
            "batch:DescribeJobs",
            "batch:ListJobs",
            "batch:DescribeJobQueues",
            "batch:DescribeJobDefinitions",
            "batch:DescribeComputeEnvironments",  # the quote: the live vCPU ceiling
            "ec2:DescribeSpotPriceHistory",  # the quote (estimate)
            "pricing:GetProducts",
        ],
    }


def _template_rules(jd: dict) -> list[dict]:
    rules = jd["Properties"]["RetryStrategy"]["EvaluateOnExit"]
    return [{k[0].lower() + k[1:]: v for k, v in rule.items()} for rule in rules]


def _first_match(rules: list[dict], exit_code: int) -> dict:
    """The first rule Batch applies to a container exit (no status reason, no reason)."""
    for rule in rules:
        if "onExitCode" in rule and re.fullmatch(rule["onExitCode"].replace("*", ".*"), str(exit_code)):
            return rule
        if rule.get("onReason") == "*":
            return rule
    raise AssertionError(f"no rule matches exit code {exit_code}: Batch would retry it")


def test_retry_rules(template):
    jds = resources_of(template, "AWS::Batch::JobDefinition")
    assert set(jds) == {"RenderJobDefinition", "StitchJobDefinition"}
    for jd in jds.values():
        rules = _template_rules(jd)
        assert jd["Properties"]["RetryStrategy"]["Attempts"] == {"Ref": "RetryAttempts"}
        assert len(rules) <= 5
        assert rules[0] == {"onStatusReason": "Host EC2*", "action": "RETRY"}
        assert rules[1] == {"onExitCode": str(exitcodes.RETRYABLE), "action": "RETRY"}
        # ends in catch-all EXIT rules (if none matches, Batch would retry)
        assert rules[2:] == [{"onExitCode": "*", "action": "EXIT"}, {"onReason": "*", "action": "EXIT"}]
        assert _first_match(rules, exitcodes.RETRYABLE)["action"] == "RETRY"
        assert _first_match(rules, exitcodes.CONTENT_ERROR)["action"] == "EXIT"
        assert _first_match(rules, 1)["action"] == "EXIT"
        assert jd["Properties"]["Timeout"]["AttemptDurationSeconds"]["Ref"].endswith("TimeoutSeconds")
    attempts = template["Parameters"]["RetryAttempts"]
    assert (attempts["MinValue"], attempts["MaxValue"]) == (1, 10)


def test_submit_time_retry_rules_agree_with_the_job_definitions(template):
    """A retry strategy given at submit replaces the job definition's: both must say the same."""
    rules = _template_rules(template["Resources"]["RenderJobDefinition"])
    assert rules == retry_strategy(3)["evaluateOnExit"]


def test_job_definitions_run_the_worker_with_logs(template):
    for name, command, prefix in [
        ("RenderJobDefinition", ["render"], "render"),
        ("StitchJobDefinition", ["stitch"], "stitch"),
    ]:
        props = template["Resources"][name]["Properties"]
        cp = props["ContainerProperties"]
        assert cp["Command"] == command
        assert "blender-${BlenderVersion}" in json.dumps(cp["Image"])
        kinds = {r["Type"] for r in cp["ResourceRequirements"]}
        assert kinds == {"VCPU", "MEMORY"}
        opts = cp["LogConfiguration"]["Options"]
        assert cp["LogConfiguration"]["LogDriver"] == "awslogs"
        assert opts["awslogs-group"] == {"Ref": "LogGroup"}
        assert opts["awslogs-stream-prefix"] == prefix
    assert template["Resources"]["LogGroup"]["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_bucket_is_private_encrypted_tls_only_and_expires_inputs_and_frames(template):
    props = template["Resources"]["Bucket"]["Properties"]
    assert all(props["PublicAccessBlockConfiguration"].values())
    assert len(props["PublicAccessBlockConfiguration"]) == 4
    sse = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert sse["SSEAlgorithm"] in ("AES256", "aws:kms")
    rules = {r["Id"]: r for r in props["LifecycleConfiguration"]["Rules"]}
    assert rules["expire-inputs"]["Prefix"] == "inputs/"
    assert rules["expire-frames"]["Prefix"] == "frames/"
    expiring = [r for r in rules.values() if "ExpirationInDays" in r]
    # videos are kept: no rule expires everything
    assert all(r.get("Prefix") for r in expiring)
    policy = template["Resources"]["BucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    tls = [s for s in policy if s["Effect"] == "Deny"]
    assert tls and tls[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_batch_uses_its_service_linked_role(template):
    """No custom service role: AWSServiceRoleForBatch lets Batch update compute environments in
    place (a custom role makes instance-type or launch-template changes replace them)."""
    for name, ce in resources_of(template, "AWS::Batch::ComputeEnvironment").items():
        assert "ServiceRole" not in ce["Properties"], name
    for name, role in resources_of(template, "AWS::IAM::Role").items():
        statements = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]
        principals = [st["Principal"].get("Service") for st in statements]
        assert "batch.amazonaws.com" not in principals, name
    assert "AWSBatchServiceRole" not in json.dumps(template)


def test_ecr_scans_on_push_and_keeps_last_n_per_blender_version(template):
    from addon.core.aws import images

    props = template["Resources"]["Repository"]["Properties"]
    assert props["ImageScanningConfiguration"]["ScanOnPush"] is True
    text = props["LifecyclePolicy"]["LifecyclePolicyText"]["Fn::Sub"]
    rules = json.loads(text.replace("${KeepImages}", "10"))["rules"]
    assert [r["rulePriority"] for r in rules] == list(range(1, len(rules) + 1))
    assert rules[0]["selection"]["tagStatus"] == "untagged"
    # one rule per Blender line, each keeping its own 10: a rarely published version's tag survives
    per_line = {r["selection"]["tagPrefixList"][0]: r["selection"]["countNumber"] for r in rules[1:-1]}
    for line in ("4.2", "4.3", "4.4", "4.5", "5.0", "5.1", "5.2", "5.3", *images.BLENDER_VERSIONS):
        assert per_line[f"blender-{line}"] == 10, line
        assert images.image_tags(line, "0" * 64)[1].startswith(f"blender-{line}")  # both tags match
    assert all(r["selection"]["tagStatus"] == "tagged" for r in rules[1:-1])
    # the catch-all (tagStatus any) must come last, after every per-version rule
    assert rules[-1]["selection"] == {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 10}


def test_spot_first_queue_with_on_demand_fallback_and_optional_gpu(template):
    ces = resources_of(template, "AWS::Batch::ComputeEnvironment")
    spot = ces["SpotComputeEnvironment"]["Properties"]["ComputeResources"]
    assert spot["Type"] == "SPOT"
    assert spot["AllocationStrategy"] == "SPOT_PRICE_CAPACITY_OPTIMIZED"
    assert spot["MinvCpus"] == 0
    assert spot["InstanceTypes"] == {"Fn::Split": [",", {"Ref": "SpotInstanceTypes"}]}
    assert ces["OnDemandComputeEnvironment"]["Properties"]["ComputeResources"]["Type"] == "EC2"
    order = template["Resources"]["JobQueue"]["Properties"]["ComputeEnvironmentOrder"]["Fn::If"][1]
    assert [o["ComputeEnvironment"]["Ref"] for o in sorted(order, key=lambda o: o["Order"])] == [
        "SpotComputeEnvironment",
        "OnDemandComputeEnvironment",
    ]
    assert ces["GpuComputeEnvironment"]["Condition"] == "HasGpu"
    assert template["Resources"]["GpuJobQueue"]["Condition"] == "HasGpu"
    assert template["Parameters"]["EnableGpu"]["Default"] == "false"
    for ce in ces.values():
        lt = ce["Properties"]["ComputeResources"]["LaunchTemplate"]
        assert lt["LaunchTemplateId"] == {"Ref": "LaunchTemplate"}


def test_launch_template_enables_spot_draining(template):
    data = template["Resources"]["LaunchTemplate"]["Properties"]["LaunchTemplateData"]
    user_data = data["UserData"]["Fn::Base64"]
    assert "ECS_ENABLE_SPOT_INSTANCE_DRAINING=true" in user_data
    assert user_data.startswith("MIME-Version: 1.0")  # Batch only takes MIME multi-part


def test_network_is_created_or_reused(template):
    assert template["Conditions"]["CreateVpc"] == {"Fn::Equals": [{"Ref": "VpcId"}, ""]}
    created = [k for k, v in template["Resources"].items() if v.get("Condition") == "CreateVpc"]
    assert {"Vpc", "PublicSubnetA", "PublicSubnetB", "InternetGateway"} <= set(created)
    assert not resources_of(template, "AWS::EC2::NatGateway")  # no hourly NAT cost


def test_outputs_are_the_contract(template):
    outputs = template["Outputs"]
    assert set(outputs) == {*REQUIRED_OUTPUTS.values(), "GpuJobQueue", "SubmitterPolicyArn"}
    assert outputs["GpuJobQueue"]["Condition"] == "HasGpu"

"""Stack failures moto cannot produce (it applies templates synchronously and never rolls
back), driven with botocore's Stubber: the update that rolls back, and the error names
the failing resource from this deploy's events, not an older one."""

from __future__ import annotations

from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from addon.core.aws import deploy, stack, stack_events
from addon.core.aws.session import AwsSettings

STACK_ID = "arn:aws:cloudformation:us-east-1:123456789012:stack/render/abc"
CS_ID = "arn:aws:cloudformation:us-east-1:123456789012:changeSet/abr-1/def"
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _event(event_id: str, logical: str, status: str, reason: str = "") -> dict:
    event = {
        "StackId": STACK_ID,
        "EventId": event_id,
        "StackName": "render",
        "LogicalResourceId": logical,
        "ResourceType": "AWS::Batch::JobQueue" if logical == "JobQueue" else "AWS::CloudFormation::Stack",
        "Timestamp": NOW,
        "ResourceStatus": status,
    }
    if reason:
        event["ResourceStatusReason"] = reason
    return event


def _stack(status: str) -> dict:
    return {
        "Stacks": [
            {
                "StackName": "render",
                "StackId": STACK_ID,
                "CreationTime": NOW,
                "StackStatus": status,
                "Parameters": [{"ParameterKey": "SpotMaxVcpus", "ParameterValue": "64"}],
            }
        ]
    }


@pytest.fixture
def cfn(monkeypatch):
    cfn = boto3.client("cloudformation", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    for module in (deploy, stack):  # deploy reads through stack.describe_stack too
        monkeypatch.setattr(module, "client", lambda service, settings, sess=None: cfn)
    return cfn


def test_update_that_rolls_back_names_this_deploys_first_failure(cfn):
    old = _event("old-1", "JobQueue", "UPDATE_FAILED", "an older failure")
    new = [
        _event("new-1", "render", "UPDATE_IN_PROGRESS", "User Initiated"),
        _event("new-2", "JobQueue", "UPDATE_FAILED", "Resource handler returned message: quota exceeded"),
        _event("new-3", "render", "UPDATE_ROLLBACK_COMPLETE"),
    ]
    with Stubber(cfn) as stub:
        stub.add_response(
            "get_template_summary",
            {"Parameters": [{"ParameterKey": "SpotMaxVcpus", "DefaultValue": "256"}]},
        )
        stub.add_response("describe_stacks", _stack("UPDATE_COMPLETE"), {"StackName": "render"})
        stub.add_response("describe_stack_events", {"StackEvents": [old]})
        stub.add_response("create_change_set", {"Id": CS_ID, "StackId": STACK_ID})
        stub.add_response(
            "describe_change_set",
            {"ChangeSetId": CS_ID, "Status": "CREATE_COMPLETE", "ExecutionStatus": "AVAILABLE", "Changes": []},
        )
        stub.add_response("execute_change_set", {}, {"ChangeSetName": CS_ID})
        stub.add_response(
            "describe_change_set", {"ExecutionStatus": "EXECUTE_IN_PROGRESS", "Status": "CREATE_COMPLETE"}
        )
        stub.add_response("describe_stack_events", {"StackEvents": [*reversed(new), old]})
        stub.add_response("describe_stacks", _stack("UPDATE_ROLLBACK_COMPLETE"))
        stub.add_response("describe_stack_events", {"StackEvents": [*reversed(new), old]})
        events: list[stack_events.StackEvent] = []
        with pytest.raises(stack.StackError) as failed:
            deploy.deploy_stack(
                "render", AwsSettings(region="us-east-1"), "template", {}, on_event=events.append, poll_seconds=0
            )
        stub.assert_no_pending_responses()
    message = str(failed.value)
    assert "ended UPDATE_ROLLBACK_COMPLETE" in message
    assert "JobQueue: Resource handler returned message: quota exceeded" in message
    assert "older failure" not in message
    assert [e.status for e in events] == ["UPDATE_IN_PROGRESS", "UPDATE_FAILED", "UPDATE_ROLLBACK_COMPLETE"]
    assert events[1].failed and events[1].logical_id == "JobQueue"


def test_deploy_refuses_a_stack_that_failed_to_create(cfn):
    with Stubber(cfn) as stub:
        stub.add_response("get_template_summary", {"Parameters": []})
        stub.add_response("describe_stacks", _stack("ROLLBACK_COMPLETE"))
        with pytest.raises(stack.StackError, match=r"ROLLBACK_COMPLETE.*aws-batch-render destroy --stack render"):
            deploy.deploy_stack("render", AwsSettings(region="us-east-1"), "template", {}, poll_seconds=0)


def test_deploy_refuses_a_busy_stack(cfn):
    with Stubber(cfn) as stub:
        stub.add_response("get_template_summary", {"Parameters": []})
        stub.add_response("describe_stacks", _stack("UPDATE_IN_PROGRESS"))
        with pytest.raises(stack.StackError, match=r"busy \(UPDATE_IN_PROGRESS\)"):
            deploy.deploy_stack("render", AwsSettings(region="us-east-1"), "template", {}, poll_seconds=0)

"""(No tests here.) Builders shared by the AWS Batch backend tests: a queue, a compute environment and
the two job definitions in a moto endpoint, and a spec written to its bucket."""

from __future__ import annotations

from dataclasses import dataclass

from addon.core.aws.session import AwsSettings, client
from addon.core.backends.aws_batch.backend import AwsBatchBackend
from addon.core.jobspec import JobSpec
from addon.core.storage import S3Store
from tests.helpers import make_spec

QUEUE = "abr-queue"
RENDER_DEF = "abr-render"
STITCH_DEF = "abr-stitch"
BUCKET = "abr-test"


@dataclass
class BatchEnv:
    settings: AwsSettings
    queue_arn: str
    render_def_arn: str
    stitch_def_arn: str

    def backend(self, **kwargs) -> AwsBatchBackend:
        return AwsBatchBackend(self.settings, QUEUE, RENDER_DEF, STITCH_DEF, **kwargs)


def create_batch_env(settings: AwsSettings) -> BatchEnv:
    iam = client("iam", settings)
    role = iam.create_role(RoleName="abr-batch-service", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    batch = client("batch", settings)
    ce = batch.create_compute_environment(
        computeEnvironmentName="abr-ce", type="UNMANAGED", state="ENABLED", serviceRole=role
    )
    queue = batch.create_job_queue(
        jobQueueName=QUEUE,
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce["computeEnvironmentArn"]}],
    )
    defs = {}
    for name, command in ((RENDER_DEF, ["render"]), (STITCH_DEF, ["stitch"])):
        defs[name] = batch.register_job_definition(
            jobDefinitionName=name,
            type="container",
            containerProperties={"image": "abr-worker:test", "vcpus": 2, "memory": 2048, "command": command},
        )["jobDefinitionArn"]
    return BatchEnv(settings, queue["jobQueueArn"], defs[RENDER_DEF], defs[STITCH_DEF])


def write_spec(settings: AwsSettings, bucket: str = BUCKET, **overrides) -> tuple[JobSpec, str]:
    """A spec under s3://bucket/, written where the worker would read it."""
    spec = make_spec(root=f"s3://{bucket}/", **overrides)
    spec_uri = spec.output.frames_uri.rsplit("frames/", 1)[0] + "spec.json"
    S3Store(settings).put_bytes(spec.to_json().encode(), spec_uri)
    return spec, spec_uri


def put_frames(settings: AwsSettings, spec: JobSpec, frames, data: bytes | None = None) -> None:
    """Valid frames (a stub of a few bytes is not a done frame: addon.core.framecheck)."""
    from tests.frame_images import png_bytes

    store = S3Store(settings)
    body = data if data is not None else png_bytes(spec.render.width, spec.render.height)
    for f in frames:
        store.put_bytes(body, spec.frame_uri(f))


class CallCounter:
    """Counts AWS API calls made through clients, with botocore's own event hooks."""

    def __init__(self, *clients) -> None:
        self.calls: list[str] = []
        self.params: dict[str, list[dict]] = {}
        for c in clients:
            c.meta.events.register("provide-client-params.*.*", self._count)

    def _count(self, params, model, **_kwargs) -> None:
        self.calls.append(model.name)
        self.params.setdefault(model.name, []).append(dict(params))

    def reset(self) -> None:
        self.calls.clear()
        self.params.clear()


def clients_of(backend: AwsBatchBackend):
    return [backend.client(s) for s in ("batch", "s3", "logs")]

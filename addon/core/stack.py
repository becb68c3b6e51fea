"""The CloudFormation stack: its outputs (what Connect and --stack read), deploy,
destroy and publishing the worker image.

The template lives in ``infra/stack.yaml``. Deploy and destroy are CLI work: they block
while they poll CloudFormation and report each new stack event through a callback, so
the caller decides how to show progress. Publishing the image builds pure argv lists
(:func:`docker_build_argv` and friends) and runs them with :mod:`subprocess`; secrets
(the ECR password) go through stdin, never through argv.

boto3 is imported lazily by :mod:`.aws`; this module never imports bpy.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .aws import AwsSettings, client, session
from .aws_errors import aws_errors, error_code, is_aws_exception, translate_aws_error
from .errors import AwsBatchRenderError

log = logging.getLogger(__name__)

#: the repository checkout this package sits in (editable install)
REPO_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = REPO_ROOT / "infra" / "stack.yaml"
#: CloudFormation accepts a TemplateBody up to this many bytes
MAX_TEMPLATE_BODY = 51_200
#: the ECR repository is named "<stack>-worker" and ECR names are lowercase
STACK_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,119}$")
#: Blender lines the worker image is published for (image tag blender-X.Y)
BLENDER_VERSIONS = ("5.2", "4.5")
#: the Dockerfile pins one base stage per full bpy version: "AS python-for-bpy-5.2.3"
_DOCKER_STAGE = re.compile(r"\bAS\s+python-for-bpy-(\d+\.\d+\.\d+)\b", re.IGNORECASE)


class StackError(AwsBatchRenderError):
    """Deploying, reading or deleting the CloudFormation stack failed."""

    exit_code = 4


class StackNotFoundError(StackError):
    """No stack of that name exists in the region."""


class BucketNotEmptyError(StackError):
    """destroy was asked to delete a stack whose bucket still holds objects."""


class DockerUnavailableError(AwsBatchRenderError):
    """The docker command or its engine is missing."""

    exit_code = 5


class ImagePublishError(AwsBatchRenderError):
    """Building, tagging or pushing the worker image failed."""

    exit_code = 9


# ------------------------------------------------------------------ outputs


@dataclass
class StackOutputs:
    """The stack's Outputs, by their CloudFormation output keys."""

    bucket: str  # BucketName
    job_queue: str  # JobQueue (ARN)
    render_job_definition: str  # RenderJobDefinition (ARN)
    stitch_job_definition: str  # StitchJobDefinition (ARN)
    repository_uri: str  # RepositoryUri
    log_group: str  # LogGroupName
    region: str  # Region
    gpu_job_queue: str = ""  # GpuJobQueue, "" when the stack has no GPU queue
    image_tags: tuple[str, ...] = ()  # tags present in the repository (e.g. blender-5.2)
    submitter_policy: str = ""  # SubmitterPolicyArn: attach to the artists' IAM users or groups


#: StackOutputs field -> CloudFormation output key, for the outputs every stack has
REQUIRED_OUTPUTS = {
    "bucket": "BucketName",
    "job_queue": "JobQueue",
    "render_job_definition": "RenderJobDefinition",
    "stitch_job_definition": "StitchJobDefinition",
    "repository_uri": "RepositoryUri",
    "log_group": "LogGroupName",
    "region": "Region",
}
OPTIONAL_OUTPUTS = {"gpu_job_queue": "GpuJobQueue", "submitter_policy": "SubmitterPolicyArn"}


def outputs_from_stack(stack_name: str, stack: Mapping[str, Any]) -> StackOutputs:
    """Map one ``describe_stacks`` stack to :class:`StackOutputs` (image_tags left empty)."""
    raw = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs") or []}
    missing = [key for key in REQUIRED_OUTPUTS.values() if not raw.get(key)]
    if missing:
        raise StackError(
            f"Stack {stack_name!r} has no output {', '.join(missing)} (status {stack.get('StackStatus')}): "
            f"is it an AWS Batch Render stack? Deploy it with `aws-batch-render deploy --stack {stack_name}`."
        )
    values = {name: raw[key] for name, key in REQUIRED_OUTPUTS.items()}
    values.update({name: raw.get(key, "") for name, key in OPTIONAL_OUTPUTS.items()})
    return StackOutputs(**values)


def read_stack_outputs(stack_name: str, settings: AwsSettings) -> StackOutputs:
    """The outputs of a deployed stack, with the image tags its repository holds."""
    stack = describe_stack(stack_name, settings)
    if stack is None:
        raise StackNotFoundError(_not_found_message(stack_name, settings))
    status = stack["StackStatus"]
    if status.endswith("_IN_PROGRESS") and "UPDATE" not in status:
        raise StackError(f"Stack {stack_name!r} is {status}: wait until it finishes, then try again.")
    outputs = outputs_from_stack(stack_name, stack)
    outputs.image_tags = repository_image_tags(outputs.repository_uri, _with_region(settings, outputs.region))
    return outputs


def repository_image_tags(repository_uri: str, settings: AwsSettings) -> tuple[str, ...]:
    """Tags in the stack's repository (one paginated ``list_images``); () when unreadable."""
    name = repository_uri.split("/", 1)[1] if "/" in repository_uri else repository_uri
    tags: set[str] = set()
    try:
        ecr = client("ecr", settings)
        for page in ecr.get_paginator("list_images").paginate(repositoryName=name, filter={"tagStatus": "TAGGED"}):
            tags.update(i["imageTag"] for i in page.get("imageIds", []) if i.get("imageTag"))
    except Exception as exc:  # the tags are a convenience: never fail Connect over them
        log.info("could not list the images of %s: %s", name, exc)
        return ()
    return tuple(sorted(tags))


# ------------------------------------------------------------------ deploy


@dataclass
class StackEvent:
    """One CloudFormation stack event (plain data for progress output)."""

    timestamp: str
    logical_id: str
    resource_type: str
    status: str
    reason: str = ""

    @property
    def failed(self) -> bool:
        return self.status.endswith("_FAILED")


@dataclass
class DeployResult:
    stack_name: str
    action: str  # "created", "updated" or "unchanged"
    outputs: StackOutputs
    parameters: dict[str, str] = field(default_factory=dict)
    changes: list[str] = field(default_factory=list)  # "Modify JobQueue (Replacement: False)"


def validate_stack_name(name: str) -> str:
    if not STACK_NAME_RE.match(name or ""):
        raise StackError(
            f"Stack name {name!r} is not usable: use lowercase letters, digits and '-', starting "
            "with a letter, at most 120 characters (it also names the ECR repository)."
        )
    return name


def load_template(path: Path | str | None = None) -> str:
    """The template text; ``infra/stack.yaml`` of this checkout by default."""
    path = Path(path) if path else TEMPLATE_PATH
    if not path.is_file():
        raise StackError(
            f"CloudFormation template {path} not found: run from a checkout of aws-batch-render "
            "or pass --template PATH."
        )
    body = path.read_text(encoding="utf-8")
    if len(body.encode()) > MAX_TEMPLATE_BODY:
        raise StackError(f"Template {path} is over {MAX_TEMPLATE_BODY} bytes, CloudFormation's inline limit.")
    return body


def parse_parameters(pairs: Iterable[str]) -> dict[str, str]:
    """``["Key=Value", ...]`` from the command line into a dict."""
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not re.match(r"^[A-Za-z0-9]+$", key):
            raise StackError(f"Parameter {pair!r} is not KEY=VALUE (for example SpotMaxVcpus=512).")
        params[key] = value
    return params


def resolve_parameters(
    declared: Mapping[str, str], given: Mapping[str, str], previous: Mapping[str, str]
) -> dict[str, str]:
    """Every template parameter pinned explicitly: given, else the stack's current value,
    else the template default. Pinning keeps an update from silently reverting a value set
    by an earlier deploy, and lets an unchanged deploy be recognised as one."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise StackError(
            f"Unknown stack parameter {', '.join(unknown)}: the template has {', '.join(sorted(declared))}."
        )
    resolved = {}
    for key, default in declared.items():
        if key in given:
            resolved[key] = str(given[key])
        elif key in previous:
            resolved[key] = str(previous[key])
        else:
            resolved[key] = str(default)
    return resolved


def deploy_stack(
    stack_name: str,
    settings: AwsSettings,
    template_body: str | None = None,
    parameters: Mapping[str, str] | None = None,
    on_event: Callable[[StackEvent], None] | None = None,
    poll_seconds: float = 5.0,
    timeout_seconds: float = 3600.0,
) -> DeployResult:
    """Create the stack, or update it through a change set; an unchanged stack is a no-op.

    Blocks until CloudFormation finishes, calling ``on_event`` for each new stack event.
    A new stack is created with CreateStack (a CREATE change set does the same work, and
    the moto server used by the tests does not record outputs of a stack created that
    way); updates go through a change set, so an unchanged template and parameters are
    recognised and nothing runs.
    """
    validate_stack_name(stack_name)
    body = template_body if template_body is not None else load_template()
    cfn = client("cloudformation", settings)
    declared = _template_parameters(cfn, body)
    stack = describe_stack(stack_name, settings, cfn)
    status = stack["StackStatus"] if stack else ""
    if status == "ROLLBACK_COMPLETE":
        raise StackError(
            f"Stack {stack_name!r} failed to create earlier (ROLLBACK_COMPLETE) and cannot be updated: "
            f"run `aws-batch-render destroy --stack {stack_name}`, then deploy again."
        )
    if status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
        raise StackError(f"Stack {stack_name!r} is busy ({status}): wait until it finishes, then deploy again.")
    previous = {p["ParameterKey"]: p.get("ParameterValue", "") for p in (stack or {}).get("Parameters") or []}
    resolved = resolve_parameters(declared, parameters or {}, previous)
    cfn_params = [{"ParameterKey": k, "ParameterValue": v} for k, v in resolved.items()]
    seen = _event_ids(cfn, stack_name) if stack else set()
    common = {
        "StackName": stack_name,
        "TemplateBody": body,
        "Parameters": cfn_params,
        "Capabilities": ["CAPABILITY_IAM"],
        "Tags": [{"Key": "aws-batch-render:stack", "Value": stack_name}],
    }
    changes: list[str] = []
    if not stack:
        log.info("creating stack %s", stack_name)
        with _aws(f"create stack {stack_name}"):
            cfn.create_stack(**common, OnFailure="ROLLBACK")
        action = "created"
    else:
        change_type = "CREATE" if status == "REVIEW_IN_PROGRESS" else "UPDATE"
        name = "abr-" + time.strftime("%Y%m%d%H%M%S", time.gmtime())
        try:
            with _aws(f"create a change set for {stack_name}"):
                created = cfn.create_change_set(**common, ChangeSetName=name, ChangeSetType=change_type)
        except AwsBatchRenderError as exc:
            if _no_changes(str(exc)):
                return DeployResult(stack_name, "unchanged", read_stack_outputs(stack_name, settings), resolved)
            raise
        change_set = _wait_change_set(cfn, created["Id"], poll_seconds, timeout_seconds)
        if change_set["Status"] == "FAILED":
            reason = change_set.get("StatusReason", "")
            if _no_changes(reason):
                with _aws("delete the empty change set"):
                    cfn.delete_change_set(ChangeSetName=created["Id"])
                return DeployResult(stack_name, "unchanged", read_stack_outputs(stack_name, settings), resolved)
            raise StackError(f"CloudFormation could not plan the update of {stack_name!r}: {reason}")
        changes = [_describe_change(c) for c in change_set.get("Changes", [])]
        with _aws(f"execute the change set for {stack_name}"):
            cfn.execute_change_set(ChangeSetName=created["Id"])
        # Execution is asynchronous: until it starts, the stack still shows its old
        # *_COMPLETE status, which must not be taken for the end of this update.
        _wait_execution_started(cfn, created["Id"], poll_seconds, timeout_seconds)
        action = "updated" if change_type == "UPDATE" else "created"
    before = set(seen)
    final = _wait_stack(cfn, stack_name, seen, on_event, poll_seconds, timeout_seconds)
    if final not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        raise StackError(_failure_message(cfn, stack_name, final, before))
    return DeployResult(stack_name, action, read_stack_outputs(stack_name, settings), resolved, changes)


# ------------------------------------------------------------------ destroy


@dataclass
class BucketContents:
    bucket: str
    objects: int  # counted up to ``limit``
    more: bool  # True when there are more than ``objects``


@dataclass
class DestroyResult:
    stack_name: str
    bucket: str
    objects_deleted: int


def bucket_contents(bucket: str, settings: AwsSettings, limit: int = 1000) -> BucketContents:
    """How many objects (and object versions) the bucket holds, counted up to ``limit``."""
    s3 = client("s3", settings)
    try:
        page = s3.list_object_versions(Bucket=bucket, MaxKeys=limit)
    except Exception as exc:
        if error_code(exc) == "NoSuchBucket":
            return BucketContents(bucket, 0, False)
        if is_aws_exception(exc):
            raise translate_aws_error(exc, f"list bucket {bucket}", resource=f"s3://{bucket}") from None
        raise
    count = len(page.get("Versions", [])) + len(page.get("DeleteMarkers", []))
    return BucketContents(bucket, count, bool(page.get("IsTruncated")))


def empty_bucket(bucket: str, settings: AwsSettings, on_progress: Callable[[int], None] | None = None) -> int:
    """Delete every object, version and unfinished upload in ``bucket``; returns how many."""
    s3 = client("s3", settings)
    deleted = 0
    with _aws(f"empty bucket {bucket}"):
        for batch in _chunks(_bucket_versions(s3, bucket), 1000):
            resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})
            errors = resp.get("Errors") or []
            if errors:
                first = errors[0]
                raise StackError(
                    f"Could not delete s3://{bucket}/{first.get('Key')}: {first.get('Message')} "
                    "(check s3:DeleteObject and s3:DeleteObjectVersion for your user)."
                )
            deleted += len(batch)
            if on_progress:
                on_progress(deleted)
        for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
            for upload in page.get("Uploads", []):
                s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    return deleted


def destroy_stack(
    stack_name: str,
    settings: AwsSettings,
    force: bool = False,
    confirm: Callable[[BucketContents], bool] | None = None,
    on_event: Callable[[StackEvent], None] | None = None,
    poll_seconds: float = 5.0,
    timeout_seconds: float = 3600.0,
) -> DestroyResult:
    """Delete the stack. A bucket holding objects is emptied only with ``force`` and a
    ``confirm(contents)`` that returns True; otherwise nothing is deleted at all."""
    cfn = client("cloudformation", settings)
    stack = describe_stack(stack_name, settings, cfn)
    if stack is None:
        raise StackNotFoundError(_not_found_message(stack_name, settings))
    raw = {o["OutputKey"]: o.get("OutputValue", "") for o in stack.get("Outputs") or []}
    bucket = raw.get("BucketName") or _physical_id(cfn, stack_name, "Bucket")
    deleted = 0
    if bucket:
        contents = bucket_contents(bucket, settings)
        if contents.objects:
            amount = f"{contents.objects}{'+' if contents.more else ''} objects"
            if not force:
                raise BucketNotEmptyError(
                    f"Bucket {bucket} still holds {amount} (inputs, frames, videos). Download what you "
                    f"want to keep, then run `aws-batch-render destroy --stack {stack_name} --force` to "
                    "delete them together with the stack. Nothing was deleted."
                )
            if confirm is None or not confirm(contents):
                raise BucketNotEmptyError(f"Not confirmed: bucket {bucket} and stack {stack_name!r} are kept.")
            deleted = empty_bucket(bucket, settings)
    seen = _event_ids(cfn, stack_name)
    before = set(seen)
    with _aws(f"delete stack {stack_name}"):
        cfn.delete_stack(StackName=stack["StackId"])
    final = _wait_stack(cfn, stack["StackId"], seen, on_event, poll_seconds, timeout_seconds)
    if final != "DELETE_COMPLETE":
        raise StackError(_failure_message(cfn, stack["StackId"], final, before))
    return DestroyResult(stack_name, bucket, deleted)


# ------------------------------------------------------------------ worker image


@dataclass
class PublishPlan:
    """Everything publish-image will run, decided before anything runs."""

    repository_uri: str
    registry: str  # host part of the repository URI, what docker logs in to
    blender_version: str
    content_hash: str
    tags: list[str]  # full image references: repo:blender-5.2, repo:blender-5.2-<hash>
    build: list[str]  # argv
    pushes: list[list[str]]  # argv per tag
    context: Path
    dockerfile: Path


def image_tags(blender_version: str, content_hash: str) -> list[str]:
    """The tags one publish pushes: the moving ``blender-X.Y`` and a content-addressed one."""
    return [f"blender-{blender_version}", f"blender-{blender_version}-{content_hash[:12]}"]


#: what the image is built from; a change anywhere here gives a new content tag
#: (the files the Dockerfile copies, as its .dockerignore lets through)
HASHED_PATHS = ("Dockerfile", ".dockerignore", "pyproject.toml", "requirements/runtime.txt", "addon", "worker")


def context_hash(context: Path, blender_version: str, paths: Iterable[str] = HASHED_PATHS) -> str:
    """sha256 over the build inputs (file names and bytes, sorted) and the Blender version."""
    digest = hashlib.sha256(f"BLENDER_VERSION={blender_version}\n".encode())
    for path in sorted(_hashed_files(context, paths)):
        digest.update(path.relative_to(context).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def docker_build_argv(
    dockerfile: Path, context: Path, blender_version: str, tags: Iterable[str], platform: str = "linux/amd64"
) -> list[str]:
    argv = ["docker", "build", "--file", str(dockerfile), "--build-arg", f"BLENDER_VERSION={blender_version}"]
    if platform:
        # Batch runs x86_64 instances: an image built on an ARM laptop would not start there.
        argv += ["--platform", platform]
    for tag in tags:
        argv += ["--tag", tag]
    return [*argv, str(context)]


def docker_login_argv(registry: str, username: str = "AWS") -> list[str]:
    """``docker login``; the password goes to stdin so it never shows in a process list."""
    return ["docker", "login", "--username", username, "--password-stdin", registry]


def docker_push_argv(image: str) -> list[str]:
    return ["docker", "push", image]


def build_version(blender: str, dockerfile_text: str) -> str:
    """The full ``BLENDER_VERSION`` build argument for ``blender`` ("5.2" or "5.2.3").

    The Dockerfile names one base stage per pinned bpy version; "5.2" picks the 5.2.x
    stage. A Dockerfile without such stages takes the version as given.
    """
    pinned = _DOCKER_STAGE.findall(dockerfile_text)
    if not pinned:
        return blender
    matches = [v for v in pinned if v == blender or v.rsplit(".", 1)[0] == blender]
    if not matches:
        lines = sorted({v.rsplit(".", 1)[0] for v in pinned})
        raise ImagePublishError(
            f"The Dockerfile has no Blender {blender} stage: publish one of {', '.join(lines)} (e.g. --blender 5.2)."
        )
    return sorted(matches, key=lambda v: [int(p) for p in v.split(".")])[-1]


def plan_publish(
    repository_uri: str,
    blender_version: str,
    context: Path | None = None,
    dockerfile: Path | None = None,
    platform: str = "linux/amd64",
) -> PublishPlan:
    """Decide tags and commands (pure apart from reading the build context)."""
    if not re.match(r"^\d+\.\d+(\.\d+)?$", blender_version or ""):
        raise ImagePublishError(f"Blender version {blender_version!r} is not X.Y (e.g. 5.2) or X.Y.Z.")
    context = Path(context) if context else REPO_ROOT
    dockerfile = Path(dockerfile) if dockerfile else context / "Dockerfile"
    if not dockerfile.is_file():
        raise ImagePublishError(f"No Dockerfile at {dockerfile}: run from the aws-batch-render checkout.")
    if "/" not in repository_uri or ".dkr.ecr." not in repository_uri.split("/", 1)[0]:
        raise ImagePublishError(
            f"{repository_uri!r} is not an ECR repository URI (ACCOUNT.dkr.ecr.REGION.amazonaws.com/NAME)."
        )
    full = build_version(blender_version, dockerfile.read_text(encoding="utf-8"))
    line = ".".join(full.split(".")[:2])  # the tag the job definitions use: blender-X.Y
    digest = context_hash(context, full)
    refs = [f"{repository_uri}:{tag}" for tag in image_tags(line, digest)]
    return PublishPlan(
        repository_uri=repository_uri,
        registry=repository_uri.split("/", 1)[0],
        blender_version=full,
        content_hash=digest,
        tags=refs,
        build=docker_build_argv(dockerfile, context, full, refs, platform),
        pushes=[docker_push_argv(ref) for ref in refs],
        context=context,
        dockerfile=dockerfile,
    )


@dataclass
class EcrLogin:
    registry: str  # host, without https://
    username: str
    password: str = field(repr=False)


def ecr_login(settings: AwsSettings, registry: str = "") -> EcrLogin:
    """Docker credentials for the account's registry, from ``ecr:GetAuthorizationToken``."""
    ecr = client("ecr", settings)
    kwargs: dict[str, Any] = {}
    if registry:
        kwargs["registryIds"] = [registry.split(".", 1)[0]]
    with _aws("get an ECR login (ecr:GetAuthorizationToken)"):
        data = ecr.get_authorization_token(**kwargs)["authorizationData"][0]
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    endpoint = re.sub(r"^https?://", "", data.get("proxyEndpoint", "")).rstrip("/")
    return EcrLogin(registry=registry or endpoint, username=username, password=password)


def check_docker(runner: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> str:
    """The docker engine's version; raises :class:`DockerUnavailableError` saying what is missing."""
    if shutil.which("docker") is None:
        raise DockerUnavailableError(
            "Docker is needed to build the worker image and was not found: install Docker "
            "(https://docs.docker.com/get-docker/), start it, then run publish-image again."
        )
    try:
        proc = runner(
            ["docker", "info", "--format", "{{.ServerVersion}}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise DockerUnavailableError(f"Docker is needed to build the worker image but did not answer: {exc}.") from exc
    text = (proc.stdout or "") + (proc.stderr or "")
    if proc.returncode != 0 or not proc.stdout.strip():
        if "Cannot connect to the Docker daemon" in text or "daemon running" in text:
            raise DockerUnavailableError(
                "Docker is needed to build the worker image: the docker command is installed but its "
                "engine is not running (Cannot connect to the Docker daemon). Start Docker Desktop or "
                "the docker service, then run publish-image again."
            )
        raise DockerUnavailableError(
            f"Docker is needed to build the worker image, and `docker info` failed: {text.strip()[:300]}"
        )
    return proc.stdout.strip()


def publish_image(
    plan: PublishPlan,
    settings: AwsSettings,
    runner: Callable[..., subprocess.CompletedProcess] = subprocess.run,
    on_step: Callable[[str], None] | None = None,
) -> list[str]:
    """Log in to ECR, build, push every tag; returns the image digests ECR reports."""
    step = on_step or (lambda _msg: None)
    check_docker(runner)
    login = ecr_login(settings, plan.registry)
    step(f"logging in to {plan.registry}")
    _run(runner, docker_login_argv(plan.registry, login.username), "docker login", stdin=login.password)
    step(f"building {plan.tags[0]} (Blender {plan.blender_version}) - this takes several minutes")
    _run(runner, plan.build, "docker build", stream=True)
    for argv in plan.pushes:
        step(f"pushing {argv[-1]}")
        _run(runner, argv, "docker push", stream=True)
    return pushed_digests(plan, settings)


def pushed_digests(plan: PublishPlan, settings: AwsSettings) -> list[str]:
    """What ECR holds under the plan's tags (checks the push really landed)."""
    name = plan.repository_uri.split("/", 1)[1]
    tags = [ref.rsplit(":", 1)[1] for ref in plan.tags]
    ecr = client("ecr", settings)
    with _aws(f"check the pushed image in {name}"):
        found = ecr.describe_images(repositoryName=name, imageIds=[{"imageTag": t} for t in tags])
    return sorted({d["imageDigest"] for d in found.get("imageDetails", [])})


# ------------------------------------------------------------------ helpers


def describe_stack(stack_name: str, settings: AwsSettings, cfn: Any = None) -> dict[str, Any] | None:
    """The stack as ``describe_stacks`` returns it, or None when there is none (or it is deleted)."""
    cfn = cfn or client("cloudformation", settings)
    with _aws(f"read stack {stack_name}", profile=settings.profile, region=settings.region):
        try:
            stacks = cfn.describe_stacks(StackName=stack_name)["Stacks"]
        except Exception as exc:
            if error_code(exc) == "ValidationError" and "does not exist" in str(exc):
                return None
            raise
    live = [s for s in stacks if s.get("StackStatus") != "DELETE_COMPLETE"]
    return live[0] if live else None


def _with_region(settings: AwsSettings, region: str) -> AwsSettings:
    if settings.region or not region:
        return settings
    return AwsSettings(
        profile=settings.profile,
        region=region,
        endpoint_url=settings.endpoint_url,
        retry_mode=settings.retry_mode,
        max_attempts=settings.max_attempts,
        max_pool_connections=settings.max_pool_connections,
    )


def _not_found_message(stack_name: str, settings: AwsSettings) -> str:
    region = settings.region
    if not region:
        try:
            region = session(settings).region_name or ""
        except Exception:  # only for the message
            region = ""
    where = f" in region {region}" if region else ""
    return (
        f"No stack named {stack_name!r}{where}: deploy it with `aws-batch-render deploy --stack {stack_name}` "
        "or pick the region it is in (--region or AWS_REGION)."
    )


def _template_parameters(cfn: Any, body: str) -> dict[str, str]:
    with _aws("read the template's parameters"):
        summary = cfn.get_template_summary(TemplateBody=body)
    return {p["ParameterKey"]: str(p.get("DefaultValue", "")) for p in summary.get("Parameters", [])}


def _event_ids(cfn: Any, stack_name: str) -> set[str]:
    try:
        return {e["EventId"] for e in cfn.describe_stack_events(StackName=stack_name)["StackEvents"]}
    except Exception as exc:
        log.debug("no events for %s yet: %s", stack_name, exc)
        return set()


def _new_events(cfn: Any, stack_name: str, seen: set[str]) -> list[StackEvent]:
    try:
        raw = cfn.describe_stack_events(StackName=stack_name)["StackEvents"]
    except Exception as exc:
        log.debug("could not read events of %s: %s", stack_name, exc)
        return []
    fresh = []
    for e in reversed(raw):  # the API lists newest first
        if e["EventId"] in seen:
            continue
        seen.add(e["EventId"])
        stamp = e.get("Timestamp")
        fresh.append(
            StackEvent(
                timestamp=stamp.strftime("%H:%M:%S") if hasattr(stamp, "strftime") else str(stamp or ""),
                logical_id=e.get("LogicalResourceId", ""),
                resource_type=e.get("ResourceType", ""),
                status=e.get("ResourceStatus", ""),
                reason=e.get("ResourceStatusReason") or "",
            )
        )
    return fresh


def _wait_stack(
    cfn: Any,
    stack_name: str,
    seen: set[str],
    on_event: Callable[[StackEvent], None] | None,
    poll_seconds: float,
    timeout_seconds: float,
) -> str:
    """Poll until the stack leaves every *_IN_PROGRESS state; returns the final status."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        for event in _new_events(cfn, stack_name, seen):
            if on_event:
                on_event(event)
        try:
            status = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]["StackStatus"]
        except Exception as exc:
            if "does not exist" in str(exc):
                return "DELETE_COMPLETE"
            if is_aws_exception(exc):
                raise translate_aws_error(exc, f"follow stack {stack_name}") from None
            raise
        if not status.endswith("_IN_PROGRESS"):
            return status
        if time.monotonic() > deadline:
            raise StackError(
                f"Stack {stack_name} is still {status} after {timeout_seconds:.0f} s: follow it in the "
                "CloudFormation console; deploy or destroy again once it has finished."
            )
        time.sleep(poll_seconds)


def _wait_change_set(cfn: Any, change_set_id: str, poll_seconds: float, timeout_seconds: float) -> dict:
    deadline = time.monotonic() + timeout_seconds
    while True:
        with _aws("read the change set"):
            cs = cfn.describe_change_set(ChangeSetName=change_set_id)
        if cs["Status"] in ("CREATE_COMPLETE", "FAILED"):
            return cs
        if time.monotonic() > deadline:
            raise StackError(f"The change set is still {cs['Status']} after {timeout_seconds:.0f} s.")
        time.sleep(poll_seconds)


def _wait_execution_started(cfn: Any, change_set_id: str, poll_seconds: float, timeout_seconds: float) -> None:
    deadline = time.monotonic() + timeout_seconds
    while True:
        with _aws("follow the change set"):
            execution = cfn.describe_change_set(ChangeSetName=change_set_id).get("ExecutionStatus", "")
        if execution != "AVAILABLE":
            return
        if time.monotonic() > deadline:
            raise StackError("CloudFormation did not start the change set; see the CloudFormation console.")
        time.sleep(poll_seconds or 0.5)


def _failure_message(cfn: Any, stack_name: str, final: str, before: set[str]) -> str:
    """The final status and the first resource failure among the events after ``before``."""
    reasons = []
    try:
        for e in reversed(cfn.describe_stack_events(StackName=stack_name)["StackEvents"]):
            if e["EventId"] in before:
                continue
            if e.get("ResourceStatus", "").endswith("_FAILED") and e.get("ResourceStatusReason"):
                reasons.append(f"{e.get('LogicalResourceId')}: {e['ResourceStatusReason']}")
    except Exception as exc:
        log.debug("no failure events: %s", exc)
    first = reasons[0] if reasons else "no reason recorded"
    text = f"Stack {stack_name} ended {final}. First failure: {first}."
    if final == "ROLLBACK_COMPLETE":
        name = stack_name.split("/")[1] if stack_name.startswith("arn:") else stack_name
        return f"{text} Fix that, run `aws-batch-render destroy --stack {name}`, then deploy again."
    return f"{text} The stack's events in the CloudFormation console tell more."


def _describe_change(change: Mapping[str, Any]) -> str:
    rc = change.get("ResourceChange", {})
    text = f"{rc.get('Action', '?')} {rc.get('LogicalResourceId', '?')} ({rc.get('ResourceType', '?')})"
    if rc.get("Replacement") in ("True", "Conditional"):
        text += f" replacement: {rc['Replacement']}"
    return text


def _no_changes(message: str) -> bool:
    return "didn't contain changes" in message or "No updates are to be performed" in message


def _physical_id(cfn: Any, stack_name: str, logical_id: str) -> str:
    try:
        res = cfn.describe_stack_resource(StackName=stack_name, LogicalResourceId=logical_id)
        return res["StackResourceDetail"].get("PhysicalResourceId", "")
    except Exception as exc:
        log.debug("no %s in %s: %s", logical_id, stack_name, exc)
        return ""


def _bucket_versions(s3: Any, bucket: str) -> Iterator[dict[str, str]]:
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
            entry = {"Key": item["Key"]}
            if item.get("VersionId") and item["VersionId"] != "null":
                entry["VersionId"] = item["VersionId"]
            yield entry


def _chunks(items: Iterable[dict[str, str]], size: int) -> Iterator[list[dict[str, str]]]:
    batch: list[dict[str, str]] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _hashed_files(context: Path, paths: Iterable[str]) -> Iterator[Path]:
    for rel in paths:
        path = context / rel
        if path.is_file():
            yield path
        elif path.is_dir():
            for sub in path.rglob("*"):
                if sub.is_file() and "__pycache__" not in sub.parts and sub.suffix != ".pyc":
                    yield sub


def _run(
    runner: Callable[..., subprocess.CompletedProcess],
    argv: list[str],
    what: str,
    stdin: str | None = None,
    stream: bool = False,
) -> None:
    log.info("running %s", " ".join(argv))
    kwargs: dict[str, Any] = {"text": True}
    if stdin is not None:
        kwargs["input"] = stdin
    if not stream:  # build and push stream their output to the terminal
        kwargs["capture_output"] = True
    try:
        proc = runner(argv, **kwargs)
    except OSError as exc:
        raise DockerUnavailableError(f"{what} could not start: {exc}. Docker is needed to publish the image.") from exc
    if proc.returncode != 0:
        detail = ((proc.stderr or "") + (proc.stdout or "")).strip()[-500:] if not stream else "see above"
        raise ImagePublishError(f"{what} failed with exit status {proc.returncode}: {detail}")


@contextmanager
def _aws(action: str, **context: str) -> Iterator[None]:
    """Translate AWS failures (see :mod:`.aws_errors`); any other botocore failure, such
    as a response it cannot parse, still becomes a one-line :class:`StackError`."""
    try:
        with aws_errors(action, **context):
            yield
    except AwsBatchRenderError:
        raise
    except Exception as exc:
        if type(exc).__module__.startswith("botocore"):
            raise StackError(f"Cannot {action}: {exc}") from exc
        raise


def env_settings(profile: str = "", region: str = "", endpoint_url: str = "") -> AwsSettings:
    """Settings from the command line, falling back to the environment."""
    base = AwsSettings.from_env()
    return AwsSettings(
        profile=profile or base.profile,
        region=region or base.region,
        endpoint_url=endpoint_url or base.endpoint_url,
    )

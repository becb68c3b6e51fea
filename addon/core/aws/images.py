"""Publishing the worker image to the stack's ECR repository.

Pure argv lists (:func:`build_argv` and friends) decided up front in a
:class:`PublishPlan`, then run with :mod:`subprocess`; secrets (the ECR password) go
through stdin, never through argv. No bpy here; boto3 is imported lazily.

The image is built with docker when its engine answers, otherwise with buildah (no daemon,
no root needed on most Linux machines; ``BUILDAH_ISOLATION=chroot`` where even user
namespaces are not allowed, as in CI). Both log in to ECR with the token from boto3.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import AwsBatchRenderError
from .image_versions import ImagePublishError, build_version, constraints_file
from .session import AwsSettings, client
from .stack import REPO_ROOT, aws_step

log = logging.getLogger(__name__)


#: the LTS lines the full test suite and the image tier cover; publish-image takes any
#: Blender 4.2+ with a bpy wheel (addon/core/aws/bpy_wheels.py)
BLENDER_VERSIONS = ("5.2", "4.5")


#: the tools that can build and push the image, in the order ``auto`` tries them
TOOLS = ("docker", "buildah")


class DockerUnavailableError(AwsBatchRenderError):
    """Neither a docker engine nor buildah is available."""

    exit_code = 5


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
    tool: str = "docker"  # docker | buildah
    login: list[str] = field(default_factory=list)  # argv; the password goes to stdin
    tls_verify: bool = True
    digest_files: list[Path] = field(default_factory=list)  # buildah push --digestfile, per tag


def image_tags(blender_version: str, content_hash: str) -> list[str]:
    """The tags one publish pushes: the moving ``blender-X.Y`` (what the stack's job
    definitions name), the exact ``blender-X.Y.Z`` (what preflight looks for) and a
    content-addressed ``blender-X.Y.Z-<hash>``."""
    line = ".".join(blender_version.split(".")[:2])
    tags = [f"blender-{line}", f"blender-{blender_version}", f"blender-{blender_version}-{content_hash[:12]}"]
    return list(dict.fromkeys(tags))


#: what the image is built from; a change anywhere here gives a new content tag
#: (the files the Dockerfile copies, as its .dockerignore lets through, plus the version's
#: constraints file, see :func:`constraints_file`)
HASHED_PATHS = ("Dockerfile", ".dockerignore", "pyproject.toml", "requirements/runtime.txt", "addon", "worker")


def context_hash(context: Path, blender_version: str, paths: Iterable[str] = HASHED_PATHS) -> str:
    """sha256 over the build inputs (file names and bytes, sorted) and the Blender version."""
    digest = hashlib.sha256(f"BLENDER_VERSION={blender_version}\n".encode())
    paths = [*paths, constraints_file(blender_version)]
    for path in sorted(_hashed_files(context, paths)):
        digest.update(path.relative_to(context).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def build_argv(
    tool: str,
    dockerfile: Path,
    context: Path,
    blender_version: str,
    tags: Iterable[str],
    platform: str = "linux/amd64",
    python_version: str = "",
) -> list[str]:
    argv = [tool, "build", "--file", str(dockerfile), "--build-arg", f"BLENDER_VERSION={blender_version}"]
    if python_version:
        argv += ["--build-arg", f"PYTHON_VERSION={python_version}"]
    if tool == "buildah":
        argv.append("--layers")  # cache layers as docker does: code changes do not reinstall Blender
    if platform:
        # Batch runs x86_64 instances: an image built on an ARM laptop would not start there.
        argv += ["--platform", platform]
    for tag in tags:
        argv += ["--tag", tag]
    return [*argv, str(context)]


def docker_build_argv(
    dockerfile: Path, context: Path, blender_version: str, tags: Iterable[str], platform: str = "linux/amd64"
) -> list[str]:
    return build_argv("docker", dockerfile, context, blender_version, tags, platform)


def login_argv(tool: str, registry: str, username: str = "AWS", tls_verify: bool = True) -> list[str]:
    """``docker|buildah login``; the password goes to stdin so it never shows in a process list."""
    argv = [tool, "login", "--username", username, "--password-stdin"]
    if tool == "buildah" and not tls_verify:
        argv.append("--tls-verify=false")
    return [*argv, registry]


def docker_login_argv(registry: str, username: str = "AWS") -> list[str]:
    return login_argv("docker", registry, username)


def push_argv(tool: str, image: str, tls_verify: bool = True, digest_file: Path | None = None) -> list[str]:
    argv = [tool, "push"]
    if tool == "buildah":
        if not tls_verify:
            argv.append("--tls-verify=false")
        if digest_file is not None:
            argv += ["--digestfile", str(digest_file)]
    return [*argv, image]


def docker_push_argv(image: str) -> list[str]:
    return push_argv("docker", image)


def pick_tool(requested: str = "auto", runner: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> str:
    """docker when its engine answers, otherwise buildah; ``requested`` forces one."""
    if requested not in ("auto", *TOOLS):
        raise ImagePublishError(f"Unknown image tool {requested!r}: use auto, docker or buildah.")
    if requested == "docker":
        check_docker(runner)
        return "docker"
    if requested == "auto":
        try:
            check_docker(runner)
            return "docker"
        except DockerUnavailableError as exc:
            if shutil.which("buildah") is None:
                raise DockerUnavailableError(
                    f"{exc} Or install buildah (apt-get install buildah), which needs no engine."
                ) from exc
            log.info("docker is not usable (%s); building with buildah", exc)
            return "buildah"
    if shutil.which("buildah") is None:
        raise DockerUnavailableError(
            "buildah was asked for and was not found: install it (apt-get install buildah), "
            "then run publish-image again."
        )
    return "buildah"


def plan_publish(
    repository_uri: str,
    blender_version: str,
    context: Path | None = None,
    dockerfile: Path | None = None,
    platform: str = "linux/amd64",
    tool: str = "auto",
    *,
    require_ecr: bool = True,
    tls_verify: bool = True,
    runner: Callable[..., subprocess.CompletedProcess] = subprocess.run,
) -> PublishPlan:
    """Decide the tool, tags and commands (reads the build context; ``auto`` asks docker for its engine).

    ``require_ecr=False`` and ``tls_verify=False`` publish to another registry (a local one
    over plain HTTP in the tests); the CLI always publishes to the stack's ECR repository.
    """
    if not re.match(r"^\d+\.\d+(\.\d+)?$", blender_version or ""):
        raise ImagePublishError(f"Blender version {blender_version!r} is not X.Y (e.g. 5.2) or X.Y.Z.")
    context = Path(context) if context else REPO_ROOT
    dockerfile = Path(dockerfile) if dockerfile else context / "Dockerfile"
    if not dockerfile.is_file():
        raise ImagePublishError(f"No Dockerfile at {dockerfile}: run from the aws-batch-render checkout.")
    if "/" not in repository_uri or (require_ecr and not is_ecr(repository_uri.split("/", 1)[0])):
        raise ImagePublishError(
            f"{repository_uri!r} is not an ECR repository URI (ACCOUNT.dkr.ecr.REGION.amazonaws.com/NAME)."
        )
    full, python = build_version(blender_version, context, dockerfile.read_text(encoding="utf-8"))
    digest = context_hash(context, full)
    refs = [f"{repository_uri}:{tag}" for tag in image_tags(full, digest)]
    chosen = pick_tool(tool, runner)
    registry = repository_uri.split("/", 1)[0]
    digest_files: list[Path | None] = [None] * len(refs)
    if chosen == "buildah":
        digest_files = [Path(tempfile.gettempdir()) / f"abr-push-{digest[:12]}-{i}.digest" for i in range(len(refs))]
    return PublishPlan(
        repository_uri=repository_uri,
        registry=registry,
        blender_version=full,
        content_hash=digest,
        tags=refs,
        build=build_argv(chosen, dockerfile, context, full, refs, platform, python),
        pushes=[push_argv(chosen, ref, tls_verify, df) for ref, df in zip(refs, digest_files, strict=True)],
        context=context,
        dockerfile=dockerfile,
        tool=chosen,
        login=login_argv(chosen, registry, tls_verify=tls_verify),
        tls_verify=tls_verify,
        digest_files=[df for df in digest_files if df is not None],
    )


def is_ecr(registry: str) -> bool:
    return ".dkr.ecr." in registry


@dataclass
class EcrLogin:
    registry: str  # host, without https://
    username: str
    password: str = field(repr=False)


def ecr_login(settings: AwsSettings, registry: str = "") -> EcrLogin:
    """Docker credentials for the account's registry, from ``ecr:GetAuthorizationToken``."""
    ecr = client("ecr", settings)
    kwargs: dict[str, Any] = {}
    if registry and is_ecr(registry):
        kwargs["registryIds"] = [registry.split(".", 1)[0]]
    with aws_step("get an ECR login (ecr:GetAuthorizationToken)"):
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
    """Log in with the ECR token, build, push every tag; returns the pushed image digests
    (as ECR reports them; for another registry, as buildah wrote them)."""
    step = on_step or (lambda _msg: None)
    tool = plan.tool
    login = ecr_login(settings, plan.registry)
    step(f"logging in to {plan.registry} ({tool})")
    argv = [*plan.login]
    argv[argv.index("--username") + 1] = login.username
    _run(runner, argv, f"{tool} login", stdin=login.password)
    step(f"building {plan.tags[0]} (Blender {plan.blender_version}) with {tool} - this takes several minutes")
    _run(runner, plan.build, f"{tool} build", stream=True)
    for argv in plan.pushes:
        step(f"pushing {argv[-1]}")
        _run(runner, argv, f"{tool} push", stream=True)
    if is_ecr(plan.registry):
        return pushed_digests(plan, settings)
    return sorted({p.read_text().strip() for p in plan.digest_files if p.is_file()})


def pushed_digests(plan: PublishPlan, settings: AwsSettings) -> list[str]:
    """What ECR holds under the plan's tags (checks the push really landed)."""
    name = plan.repository_uri.split("/", 1)[1]
    tags = [ref.rsplit(":", 1)[1] for ref in plan.tags]
    ecr = client("ecr", settings)
    with aws_step(f"check the pushed image in {name}"):
        found = ecr.describe_images(repositoryName=name, imageIds=[{"imageTag": t} for t in tags])
    return sorted({d["imageDigest"] for d in found.get("imageDetails", [])})


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
        raise DockerUnavailableError(
            f"{what} could not start: {exc}. Docker or buildah is needed to publish the image."
        ) from exc
    if proc.returncode != 0:
        detail = ((proc.stderr or "") + (proc.stdout or "")).strip()[-500:] if not stream else "see above"
        raise ImagePublishError(f"{what} failed with exit status {proc.returncode}: {detail}")

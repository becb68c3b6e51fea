"""publish-image: the docker argv it builds, the ECR login through boto3 (moto), the
"Docker is needed" messages, and a whole publish against a stand-in docker executable.

No Docker engine runs on the test machines, so no image is built here: the stand-in
``docker`` on PATH records each call (argv and stdin) and, on ``push``, registers the
tag in the moto ECR repository the way a real push would.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest

from addon.cli import main
from addon.core.aws import deploy, images, stack
from addon.core.aws.session import client

REPO = "123456789012.dkr.ecr.us-east-1.amazonaws.com/abr-test-worker"
DOCKERFILE = """\
ARG BLENDER_VERSION=5.2.3
ARG PYTHON_VERSION=3.13
FROM debian:trixie-slim AS python-3.13
FROM debian:bookworm-slim AS python-3.11
FROM python-${PYTHON_VERSION} AS worker
COPY worker/ worker/
"""

FAKE_DOCKER = """\
#!{python}
# Stand-in for the docker CLI: records argv and stdin; `push` registers the tag in ECR.
import json, os, sys
args = sys.argv[1:]
stdin = sys.stdin.read() if args and args[0] == "login" else ""
with open(os.environ["FAKE_DOCKER_LOG"], "a") as log:
    log.write(json.dumps({{"argv": args, "stdin": stdin}}) + "\\n")
mode = os.environ.get("FAKE_DOCKER_MODE", "ok")
if args[0] == "info":
    if mode == "no-daemon":
        sys.stderr.write("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. "
                         "Is the docker daemon running?\\n")
        sys.exit(1)
    print("28.2.2")
elif args[0] == "login":
    print("Login Succeeded")
elif args[0] == "build" and mode == "build-fails":
    sys.stderr.write("failed to solve: process did not complete\\n")
    sys.exit(1)
elif args[0] == "push":
    import boto3
    repo, tag = args[1].split("/", 1)[1].rsplit(":", 1)
    mt = "application/vnd.docker.distribution.manifest.v2+json"
    manifest = json.dumps({{"schemaVersion": 2, "mediaType": mt, "layers": [], "config": {{
        "mediaType": "application/vnd.docker.container.image.v1+json", "size": 1,
        "digest": "sha256:" + "d" * 64}}}})
    boto3.client("ecr").put_image(repositoryName=repo, imageManifest=manifest,
                                  imageManifestMediaType=mt, imageTag=tag)
    print("pushed", tag)
"""


@pytest.fixture
def context(tmp_path) -> Path:
    ctx = tmp_path / "ctx"
    (ctx / "worker").mkdir(parents=True)
    (ctx / "Dockerfile").write_text(DOCKERFILE)
    (ctx / "worker" / "__main__.py").write_text("print('worker')\n")
    (ctx / "requirements").mkdir()
    for v in ("5.2.3", "4.5.15"):  # the committed pins say each version's Python: no index needed
        shutil.copyfile(stack.REPO_ROOT / images.constraints_file(v), ctx / images.constraints_file(v))
    return ctx


@pytest.fixture
def fake_docker(tmp_path, monkeypatch) -> Path:
    """A docker stand-in first on PATH; returns its call log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "docker"
    exe.write_text(FAKE_DOCKER.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "docker-calls.jsonl"
    log.write_text("")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(log))
    return log


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_build_argv_is_a_list_with_the_version_platform_and_tags(context, fake_docker):
    plan = images.plan_publish(REPO, "5.2", context)
    assert plan.tool == "docker"  # its engine answers
    digest = plan.content_hash[:12]
    assert plan.blender_version == "5.2.3"  # the newest 5.2 with committed constraints
    assert plan.tags == [f"{REPO}:blender-5.2", f"{REPO}:blender-5.2.3", f"{REPO}:blender-5.2.3-{digest}"]
    assert plan.build == [
        "docker",
        "build",
        "--file",
        str(context / "Dockerfile"),
        "--build-arg",
        "BLENDER_VERSION=5.2.3",
        "--build-arg",
        "PYTHON_VERSION=3.13",  # the bpy wheel's tag, as its constraints file says
        "--platform",
        "linux/amd64",
        "--tag",
        f"{REPO}:blender-5.2",
        "--tag",
        f"{REPO}:blender-5.2.3",
        "--tag",
        f"{REPO}:blender-5.2.3-{digest}",
        str(context),
    ]
    assert plan.pushes == [["docker", "push", t] for t in plan.tags]
    assert plan.registry == "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    assert images.docker_login_argv(plan.registry) == [
        "docker",
        "login",
        "--username",
        "AWS",
        "--password-stdin",
        plan.registry,
    ]
    plan45 = images.plan_publish(REPO, "4.5", context, platform="")
    assert "BLENDER_VERSION=4.5.15" in plan45.build and "--platform" not in plan45.build
    assert "PYTHON_VERSION=3.11" in plan45.build
    assert plan45.tags[0] == f"{REPO}:blender-4.5"


def fake_buildah(fake_docker: Path) -> None:
    """An executable named buildah beside the fake docker (only looked up, never run here)."""
    exe = fake_docker.parent / "bin" / "buildah"
    exe.write_text("#!/bin/sh\nexit 99\n")
    exe.chmod(0o755)


def test_without_a_docker_engine_buildah_builds_and_pushes(context, fake_docker, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_MODE", "no-daemon")
    fake_buildah(fake_docker)
    monkeypatch.setenv("PATH", str(fake_docker.parent / "bin"))  # no real buildah: only the one above
    plan = images.plan_publish(REPO, "5.2", context)
    assert plan.tool == "buildah"
    assert plan.build[:2] == ["buildah", "build"] and "--layers" in plan.build
    assert plan.login == ["buildah", "login", "--username", "AWS", "--password-stdin", plan.registry]
    assert [argv[:2] for argv in plan.pushes] == [["buildah", "push"]] * 3
    assert [argv[-1] for argv in plan.pushes] == plan.tags
    assert all("--tls-verify=false" not in argv for argv in [plan.login, *plan.pushes])  # ECR: TLS always
    with pytest.raises(images.ImagePublishError, match="not an ECR repository"):
        images.plan_publish("127.0.0.1:5000/worker", "5.2", context)
    local = images.plan_publish("127.0.0.1:5000/worker", "5.2", context, require_ecr=False, tls_verify=False)
    assert "--tls-verify=false" in local.login and all("--tls-verify=false" in a for a in local.pushes)


def test_neither_docker_engine_nor_buildah_says_what_to_install(context, fake_docker, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_MODE", "no-daemon")
    monkeypatch.setenv("PATH", str(fake_docker.parent / "bin"))
    with pytest.raises(images.DockerUnavailableError, match=r"engine is not running.*Or install buildah"):
        images.plan_publish(REPO, "5.2", context)
    with pytest.raises(images.DockerUnavailableError, match=r"buildah was asked for and was not found"):
        images.plan_publish(REPO, "5.2", context, tool="buildah")
    with pytest.raises(images.ImagePublishError, match="Unknown image tool 'podman'"):
        images.plan_publish(REPO, "5.2", context, tool="podman")


def test_content_hash_follows_the_build_inputs_only(context):
    first = images.plan_publish(REPO, "5.2", context).content_hash
    assert images.plan_publish(REPO, "5.2", context).content_hash == first
    assert images.plan_publish(REPO, "4.5", context).content_hash != first
    (context / "worker" / "__pycache__").mkdir()
    (context / "worker" / "__pycache__" / "x.pyc").write_bytes(b"junk")
    (context / "notes.txt").write_text("not copied into the image")
    assert images.plan_publish(REPO, "5.2", context).content_hash == first
    (context / "worker" / "__main__.py").write_text("print('changed')\n")
    assert images.plan_publish(REPO, "5.2", context).content_hash != first


def test_plan_rejects_unknown_versions_and_non_ecr_repositories(context):
    with pytest.raises(images.ImagePublishError, match=r"older than the oldest supported, 4\.2"):
        images.plan_publish(REPO, "3.6", context)
    with pytest.raises(images.ImagePublishError, match="not an ECR repository"):
        images.plan_publish("docker.io/library/blender", "5.2", context)
    with pytest.raises(images.ImagePublishError, match="No Dockerfile"):
        images.plan_publish(REPO, "5.2", context / "worker")


def test_the_checkouts_dockerfile_builds_every_committed_version():
    from addon.core.aws.image_versions import build_version

    text = (stack.REPO_ROOT / "Dockerfile").read_text()
    for line, python in (("5.2", "3.13"), ("4.5", "3.11"), ("4.2", "3.11"), ("5.3", "3.13")):
        full, py = build_version(line, stack.REPO_ROOT, text)
        assert full.startswith(f"{line}.") and py == python


def test_ecr_login_through_boto3(aws_settings):
    login = images.ecr_login(aws_settings, "123456789012.dkr.ecr.us-east-1.amazonaws.com")
    assert login.username == "AWS"
    assert login.password and login.password not in repr(login)
    assert login.registry == "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    token = client("ecr", aws_settings).get_authorization_token()["authorizationData"][0]
    assert base64.b64decode(token["authorizationToken"]).decode().startswith("AWS:")


def test_docker_missing_says_docker_is_needed(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no docker anywhere
    with pytest.raises(images.DockerUnavailableError, match=r"Docker is needed.*not found"):
        images.check_docker()


def test_docker_without_engine_says_so(fake_docker, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_MODE", "no-daemon")
    with pytest.raises(images.DockerUnavailableError, match="engine is not running"):
        images.check_docker()


def test_real_docker_cli_of_this_machine_is_understood():
    """This machine has a docker CLI and no engine; CI may have neither (or both)."""
    if shutil.which("docker") is None:
        with pytest.raises(images.DockerUnavailableError, match="not found"):
            images.check_docker()
        return
    try:
        version = images.check_docker()
    except images.DockerUnavailableError as exc:
        assert "Docker is needed" in str(exc)
    else:
        assert version  # an engine answered with its version


def test_publish_logs_in_builds_and_pushes_both_tags(aws_settings, context, fake_docker):
    out = deploy.deploy_stack("abr-test", aws_settings, poll_seconds=0).outputs
    plan = images.plan_publish(out.repository_uri, "5.2", context)
    steps: list[str] = []
    digests = images.publish_image(plan, aws_settings, on_step=steps.append)
    made = calls(fake_docker)
    assert [c["argv"][0] for c in made] == ["info", "login", "build", "push", "push", "push"]
    login = made[1]
    assert login["argv"] == images.docker_login_argv(plan.registry)[1:]
    assert login["stdin"] == images.ecr_login(aws_settings, plan.registry).password  # never in argv
    assert login["stdin"] not in " ".join(a for c in made for a in c["argv"])
    assert made[2]["argv"] == plan.build[1:]
    assert [c["argv"][1] for c in made[3:]] == plan.tags
    assert len(digests) == 1  # all tags name the same pushed image
    assert any("building" in s for s in steps)
    tags = stack.read_stack_outputs("abr-test", aws_settings).image_tags
    assert sorted(tags) == ["blender-5.2", "blender-5.2.3", f"blender-5.2.3-{plan.content_hash[:12]}"]


def test_failed_build_stops_before_pushing(aws_settings, context, fake_docker, monkeypatch):
    monkeypatch.setenv("FAKE_DOCKER_MODE", "build-fails")
    plan = images.plan_publish(REPO, "5.2", context)
    with pytest.raises(images.ImagePublishError, match="docker build failed with exit status 1"):
        images.publish_image(plan, aws_settings)
    assert [c["argv"][0] for c in calls(fake_docker)] == ["info", "login", "build"]


def test_cli_publish_image(aws, context, fake_docker, capsys, monkeypatch):
    assert main(["deploy", "--stack", "abr-test", "--poll", "0"]) == 0
    capsys.readouterr()
    base = ["publish-image", "--stack", "abr-test", "--context", str(context)]

    assert main([*base, "--blender", "4.5", "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "docker build --file" in text and "BLENDER_VERSION=4.5.15" in text
    assert "abr-test-worker:blender-4.5 " in text and "abr-test-worker:blender-4.5.15 " in text
    assert [c["argv"][0] for c in calls(fake_docker)] == ["info"]  # a dry run only asks for the engine

    assert main(base) == 0
    text = capsys.readouterr().out
    assert "Pushed:" in text and "abr-test-worker:blender-5.2" in text and "digest sha256:" in text

    monkeypatch.setenv("FAKE_DOCKER_MODE", "no-daemon")
    assert main([*base, "--tool", "docker"]) == 5
    assert "Docker is needed" in capsys.readouterr().err
    fake_buildah(fake_docker)
    monkeypatch.setenv("PATH", str(fake_docker.parent / "bin"))
    assert main([*base, "--dry-run"]) == 0  # no engine: buildah instead
    text = capsys.readouterr().out
    assert "buildah login --username AWS --password-stdin" in text and "buildah build --file" in text

    assert main(["publish-image", "--stack", "missing-stack", "--context", str(context)]) == 4
    assert "No stack named 'missing-stack'" in capsys.readouterr().err

"""publish-image without Docker: buildah builds, logs in with the ECR token boto3 got (from
moto), and pushes both tags to a real registry (Debian's docker-registry, started here on
127.0.0.1 over plain HTTP); skopeo reads the pushed manifests back.

Marker ``image``: needs buildah and the stand-in base image scripts/image_tier.sh caches,
so the image tier runs it. The Dockerfile here is a small one on the same base (pushing the
1.7 GB worker image would add minutes and test nothing more of publish-image).
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from addon.core.aws import images
from tests.helpers import free_port
from tests.image_helpers import IMAGE_CACHE, bh

pytestmark = [pytest.mark.image, pytest.mark.timeout(600)]

DOCKERFILE = """\
ARG BLENDER_VERSION=5.2.3
ARG PYTHON_VERSION=3.13
FROM debian:bookworm-slim AS python-3.13
FROM debian:bookworm-slim AS python-3.11
FROM python-${PYTHON_VERSION} AS worker
ARG BLENDER_VERSION
COPY worker/ /opt/worker/
RUN echo "$BLENDER_VERSION" > /opt/worker/blender-version
"""


@pytest.fixture
def registry(tmp_path):
    """Debian's docker-registry on a free port; yields host:port."""
    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {tmp_path / 'registry-data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    log = (tmp_path / "registry.log").open("w")
    proc = subprocess.Popen(["/usr/bin/docker-registry", "serve", str(config)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                assert proc.poll() is None, (tmp_path / "registry.log").read_text()[-2000:]
                assert time.monotonic() < deadline, "docker-registry did not answer within 30 s"
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()


@pytest.fixture
def buildah_env(tmp_path, monkeypatch):
    """buildah on the image tier's storage (where the stand-in bases are), chroot isolation."""
    bh("inspect", "--type", "image", "docker.io/library/debian:bookworm-slim")  # fails loudly when missing
    conf = tmp_path / "storage.conf"
    conf.write_text(f'[storage]\ndriver = "overlay"\ngraphroot = "{IMAGE_CACHE / "storage"}"\n'
                    f'runroot = "{IMAGE_CACHE / "runroot"}"\n')  # fmt: skip
    monkeypatch.setenv("CONTAINERS_STORAGE_CONF", str(conf))
    monkeypatch.setenv("BUILDAH_ISOLATION", "chroot")
    auth = tmp_path / "auth.json"
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(auth))
    return auth


def test_publish_with_buildah_pushes_both_tags_and_they_pull_back(aws_settings, registry, buildah_env, tmp_path):
    context = tmp_path / "ctx"
    (context / "worker").mkdir(parents=True)
    (context / "Dockerfile").write_text(DOCKERFILE)
    (context / "worker" / "__main__.py").write_text("print('worker')\n")
    (context / "requirements").mkdir()  # the pins say 4.5's newest patch and its wheel's Python
    pins = images.constraints_file("4.5.15")
    (context / pins).write_text((Path(__file__).resolve().parent.parent / pins).read_text())
    repo = f"{registry}/abr-test-worker"
    plan = images.plan_publish(repo, "4.5", context, tool="buildah", require_ecr=False, tls_verify=False)
    assert plan.tool == "buildah" and plan.build[:2] == ["buildah", "build"]
    steps: list[str] = []
    try:
        digests = images.publish_image(plan, aws_settings, on_step=steps.append)
    finally:  # the local tags name this run's registry port: drop them from the CI storage
        subprocess.run(["buildah", "rmi", *plan.tags], capture_output=True, timeout=120)
    assert len(digests) == 1 and digests[0].startswith("sha256:")  # both tags: one image
    # buildah logged in with the token boto3 got from ECR (moto), never through argv
    login = images.ecr_login(aws_settings)
    stored = json.loads(buildah_env.read_text())["auths"][registry]["auth"]
    assert base64.b64decode(stored).decode() == f"{login.username}:{login.password}"
    assert all(login.password not in " ".join(argv) for argv in [plan.login, plan.build, *plan.pushes])
    tags = ["blender-4.5", "blender-4.5.15", f"blender-4.5.15-{plan.content_hash[:12]}"]
    assert plan.tags == [f"{repo}:{t}" for t in tags]
    assert "PYTHON_VERSION=3.11" in plan.build
    for ref in plan.tags:
        out = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{ref}"],
                             capture_output=True, text=True, timeout=120)  # fmt: skip
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["Digest"] == digests[0]
    tags = subprocess.run(["skopeo", "list-tags", "--tls-verify=false", f"docker://{repo}"],
                          capture_output=True, text=True, check=True, timeout=60).stdout  # fmt: skip
    assert sorted(json.loads(tags)["Tags"]) == sorted(ref.rsplit(":", 1)[1] for ref in plan.tags)
    # and the image that comes back is the 4.5 build
    pulled = subprocess.run(["skopeo", "copy", "--src-tls-verify=false", f"docker://{plan.tags[2]}",
                             f"dir:{tmp_path / 'pulled'}"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert pulled.returncode == 0, pulled.stderr
    config_digest = json.loads((tmp_path / "pulled" / "manifest.json").read_text())["config"]["digest"]
    config = json.loads((tmp_path / "pulled" / config_digest.split(":", 1)[1]).read_text())
    assert any("BLENDER_VERSION=4.5.15" in h.get("created_by", "") for h in config["history"])
    assert any("with buildah" in s for s in steps)

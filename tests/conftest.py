"""Shared fixtures: a real moto server over HTTP, isolated Blender user resources,
and scenes generated with bpy at test time.

Blender's user folder is redirected before anything imports bpy, so tests never write
into the home directory. The moto server is one process per test session on a free
loopback port, reset before each test that asks for it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import free_port, make_scene

ROOT = Path(__file__).resolve().parent.parent
# Once per process: Blender reads BLENDER_USER_RESOURCES whenever it installs an extension,
# so it must never change under a running session (this module could be imported twice).
if "ABR_TEST_USER_RESOURCES" not in os.environ:
    os.environ["ABR_TEST_USER_RESOURCES"] = tempfile.mkdtemp(prefix="abr-blender-user-")
    os.environ["ABR_TEST_AWS_HOME"] = tempfile.mkdtemp(prefix="abr-aws-home-")
_USER_RESOURCES = os.environ["ABR_TEST_USER_RESOURCES"]
os.environ["BLENDER_USER_RESOURCES"] = _USER_RESOURCES
# Nothing a test does may read the developer's real AWS config or credentials.
_AWS_HOME = os.environ["ABR_TEST_AWS_HOME"]
os.environ["AWS_CONFIG_FILE"] = os.path.join(_AWS_HOME, "config")
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(_AWS_HOME, "credentials")
os.environ.pop("AWS_PROFILE", None)
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_USER_RESOURCES, ignore_errors=True)
    shutil.rmtree(_AWS_HOME, ignore_errors=True)


def _post(url: str, payload: dict | None = None) -> None:
    data = json.dumps(payload or {}).encode()
    req = urllib.request.Request(url, data=data, method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()


@dataclass
class MotoServer:
    endpoint: str
    process: subprocess.Popen

    def reset(self) -> None:
        _post(f"{self.endpoint}/moto-api/reset")
        self.configure_batch(use_docker=False)

    def configure_batch(self, use_docker: bool) -> None:
        _post(f"{self.endpoint}/moto-api/config", {"batch": {"use_docker": use_docker}})


@pytest.fixture(scope="session")
def moto_server():
    port = free_port()
    log = open(os.path.join(tempfile.gettempdir(), f"abr-moto-{port}.log"), "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"},
    )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"moto server did not start on {endpoint} (see {log.name})") from None
            time.sleep(0.1)
    server = MotoServer(endpoint, proc)
    server.configure_batch(use_docker=False)
    yield server
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    os.unlink(log.name)  # kept only while the server runs; a failed start keeps it for reading


@pytest.fixture
def aws(moto_server, monkeypatch):
    """A freshly reset moto server, with the environment pointing boto3 at it."""
    moto_server.reset()
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint)
    return moto_server


@pytest.fixture
def aws_settings(aws):
    from addon.core.aws import AwsSettings

    return AwsSettings(region="us-east-1", endpoint_url=aws.endpoint)


@pytest.fixture
def s3_bucket(aws_settings):
    """An empty bucket 'abr-test' in the moto server; yields its name."""
    from addon.core.aws import client

    client("s3", aws_settings).create_bucket(Bucket="abr-test")
    return "abr-test"


@pytest.fixture(scope="session")
def tiny_scene_master(tmp_path_factory) -> Path:
    """Camera, light, an animated cube; 24 frames at 64x36, Cycles at 4 samples."""
    return make_scene(tmp_path_factory.mktemp("scene") / "tiny.blend", "--frames", "24", "--size", "64x36")


@pytest.fixture
def tiny_scene(tiny_scene_master, tmp_path) -> Path:
    """A private copy of the tiny scene, in its own folder, for tests that may touch it."""
    dest = tmp_path / "project" / "tiny.blend"
    dest.parent.mkdir()
    shutil.copyfile(tiny_scene_master, dest)
    return dest

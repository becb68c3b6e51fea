"""Shared fixtures: a real moto server over HTTP, isolated Blender user resources,
and scenes generated with bpy at test time.

Blender's user folder is redirected before anything imports bpy, so tests never write
into the home directory. The moto server is one process per test session on a free
loopback port, reset before each test that asks for it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import make_scene, moto_api, start_inproc_moto, start_moto_server

ROOT = Path(__file__).resolve().parent.parent
# Once per process: Blender reads BLENDER_USER_RESOURCES whenever it installs an extension,
# so it must never change under a running session (this module could be imported twice).
if "ABR_TEST_USER_RESOURCES" not in os.environ:
    os.environ["ABR_TEST_USER_RESOURCES"] = tempfile.mkdtemp(prefix="abr-blender-user-")
    os.environ["ABR_TEST_AWS_HOME"] = tempfile.mkdtemp(prefix="abr-aws-home-")
_USER_RESOURCES = os.environ["ABR_TEST_USER_RESOURCES"]
os.environ["BLENDER_USER_RESOURCES"] = _USER_RESOURCES
# The local backend's private import folder goes under the user's cache: keep it out of the home folder.
if "ABR_TEST_CACHE_HOME" not in os.environ:
    os.environ["ABR_TEST_CACHE_HOME"] = tempfile.mkdtemp(prefix="abr-cache-home-")
_CACHE_HOME = os.environ["ABR_TEST_CACHE_HOME"]
# Workers and Blender started by tests make their scratch folders here; a killed one leaves its
# folder behind, and the session removes them all at the end (this process keeps its own temp dir).
if "ABR_TEST_TMP" not in os.environ:
    os.environ["ABR_TEST_TMP"] = tempfile.mkdtemp(prefix="abr-test-tmp-")
_TEST_TMP = os.environ["ABR_TEST_TMP"]
os.environ["TMPDIR"] = _TEST_TMP
os.environ["XDG_CACHE_HOME"] = _CACHE_HOME
os.environ.pop("XDG_RUNTIME_DIR", None)
# Nothing a test does may read the developer's real AWS config or credentials.
_AWS_HOME = os.environ["ABR_TEST_AWS_HOME"]
os.environ["AWS_CONFIG_FILE"] = os.path.join(_AWS_HOME, "config")
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.path.join(_AWS_HOME, "credentials")
os.environ.pop("AWS_PROFILE", None)
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_USER_RESOURCES, ignore_errors=True)
    shutil.rmtree(_AWS_HOME, ignore_errors=True)
    shutil.rmtree(_CACHE_HOME, ignore_errors=True)
    shutil.rmtree(_TEST_TMP, ignore_errors=True)


@dataclass
class MotoServer:
    endpoint: str
    process: subprocess.Popen

    def reset(self) -> None:
        moto_api(self.endpoint, "reset")
        self.configure_batch(use_docker=False)

    def configure_batch(self, use_docker: bool) -> None:
        moto_api(self.endpoint, "config", {"batch": {"use_docker": use_docker}})


@pytest.fixture(scope="session")
def moto_server():
    log = tempfile.NamedTemporaryFile(prefix="abr-moto-", suffix=".log", delete=False)
    try:
        proc, endpoint = start_moto_server(log)
    except RuntimeError as exc:
        raise RuntimeError(f"{exc} (see {log.name})") from None
    yield MotoServer(endpoint, proc)
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
    os.unlink(log.name)  # kept only while the server runs; a failed start keeps it for reading


@pytest.fixture(scope="module")
def inproc_moto():
    """moto in this process, so a test can set the states of its job objects; its endpoint."""
    server, endpoint = start_inproc_moto()
    yield endpoint
    server.stop()


@pytest.fixture
def aws(moto_server, monkeypatch):
    """A freshly reset moto server, with the environment pointing boto3 at it."""
    moto_server.reset()
    _point_boto3_at(moto_server.endpoint, monkeypatch)
    return moto_server


@pytest.fixture
def inproc_aws(inproc_moto, monkeypatch):
    """The in-process moto, reset (Batch without Docker), with boto3 pointed at it; its endpoint."""
    moto_api(inproc_moto, "reset")
    moto_api(inproc_moto, "config", {"batch": {"use_docker": False}})
    _point_boto3_at(inproc_moto, monkeypatch)
    return inproc_moto


def _point_boto3_at(endpoint: str, monkeypatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)


@pytest.fixture
def aws_settings(aws):
    from addon.core.aws.session import AwsSettings

    return AwsSettings(region="us-east-1", endpoint_url=aws.endpoint)


@pytest.fixture
def s3_bucket(aws_settings):
    """An empty bucket 'abr-test' in the moto server; yields its name."""
    from addon.core.aws.session import client

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

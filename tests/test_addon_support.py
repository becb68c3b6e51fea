"""(No tests here.) Shared pieces of the add-on tests: the built extension zip installed
into this process's bpy, a recording layout for Panel.draw, driving the status timer,
and an AWS Batch queue plus job definitions in the moto server.

The zip is built once per process (build_addon.build, wheels cached in build/wheels)
and installed with bpy.ops.extensions.package_install_files, so every add-on test runs
the code exactly as a user installs it: ``bl_ext.user_default.aws_batch_render``.
"""

from __future__ import annotations

import atexit
import functools
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
REPO = "user_default"
PKG = f"bl_ext.{REPO}.aws_batch_render"


def load_build_addon() -> Any:
    """build_addon.py (a script at the repository root, not a package module)."""
    if "build_addon" not in sys.modules:
        spec = importlib.util.spec_from_file_location("build_addon", ROOT / "build_addon.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["build_addon"] = module
        spec.loader.exec_module(module)
    return sys.modules["build_addon"]


@functools.lru_cache(maxsize=1)
def built_zip() -> Path:
    """The extension zip, built once per test process into a temp folder; or the one
    ``ABR_TEST_ADDON_ZIP`` names (the GUI tier builds it once, outside the Blender under test)."""
    given = os.environ.get("ABR_TEST_ADDON_ZIP")
    if given:
        return Path(given)
    build_addon = load_build_addon()
    out = Path(tempfile.mkdtemp(prefix="abr-dist-"))
    atexit.register(shutil.rmtree, out, True)
    return build_addon.build(out, ROOT / "build")


def ensure_installed() -> Any:
    """Install (once) and enable the extension; returns its top module."""
    import bpy

    if PKG not in bpy.context.preferences.addons:
        if PKG in sys.modules or _installed_dir().is_dir():
            bpy.ops.preferences.addon_enable(module=PKG)
        else:
            bpy.ops.extensions.package_install_files(
                filepath=str(built_zip()), repo=REPO, enable_on_install=True
            )
    assert PKG in bpy.context.preferences.addons, "the extension did not install/enable (see stdout)"
    return sys.modules[PKG]


def _installed_dir() -> Path:
    import bpy

    return Path(bpy.utils.user_resource("EXTENSIONS", path=REPO)) / "aws_batch_render"


def mod(name: str) -> Any:
    return sys.modules[f"{PKG}.{name}"]


def prefs() -> Any:
    import bpy

    return bpy.context.preferences.addons[PKG].preferences


def runtime() -> Any:
    import bpy

    return bpy.context.window_manager.awsbatch


def set_online(on: bool) -> None:
    import bpy

    bpy.context.preferences.system.use_online_access = on
    assert bpy.app.online_access is on


def drain(timeout: float = 60.0, until: Any = None) -> None:
    """Call the timer callback (timers never fire in bpy-module mode) until the threads
    are done and the queue is empty, or ``until()`` is true."""
    bg = mod("blender.background")
    tick = mod("blender.status_timer").tick
    deadline = time.monotonic() + timeout
    while True:
        tick()
        if until is not None and until():
            return
        if until is None and not bg.busy() and bg.MESSAGES.empty():
            tick()
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"background work did not finish in {timeout} s")
        time.sleep(0.02)


def render_and_follow(submit_timeout: float, finish_timeout: float, pause: float = 0.1) -> Any:
    """Press Render (the Render operator, as the button does), wait for the submit thread,
    then tick the status timer until the newest row ends; returns that row."""
    import bpy

    assert bpy.ops.awsbatch.submit() == {"FINISHED"}
    drain(timeout=submit_timeout, until=lambda: not runtime().submitting)
    rt = runtime()
    assert rt.submit_error == "", rt.submit_error
    row = rt.jobs[0]
    st = mod("blender.status_timer")
    deadline = time.monotonic() + finish_timeout
    while not row.finished:
        assert time.monotonic() < deadline, (row.state, row.counts, row.message, row.error)
        st.STATE.next_poll = 0.0  # do not wait for the backoff in a test
        st.tick()
        time.sleep(pause)
    drain(timeout=30)
    return row


@pytest.fixture(name="addon")
def local_store_addon(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``addon``: the installed add-on, reset before and after the test, with the local
    backend's store in the test's own folder. A test module imports it to use it."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    ensure_installed()
    reset_addon_state()
    yield
    reset_addon_state()


def reset_addon_state() -> None:
    """No rows, no errors, no records, no quote: each test starts from a clean add-on."""
    import bpy

    bg = mod("blender.background")
    bg.cancel_all()
    bg.join_all(10)
    bg.drain_pending()
    st = mod("blender.status_timer")
    st.STATE.interval = st.POLL_MIN_S
    st.STATE.next_poll = 0.0
    rt = runtime()
    rt.jobs.clear()
    rt.submitting = False
    rt.submit_error = ""
    rt.last_report = ""
    rt.polling = False
    quote = bpy.context.window_manager.awsbatch_quote  # the last Estimate: no test inherits it
    for prop in quote.bl_rna.properties:
        if prop.identifier != "rna_type":
            quote.property_unset(prop.identifier)
    shutil.rmtree(mod("blender.config").records_dir(), ignore_errors=True)


# --- a recording layout for Panel.draw ---------------------------------------------------


class _Props:
    """What ``layout.operator(...)`` returns: records the properties set on it."""

    def __init__(self, call: dict) -> None:
        object.__setattr__(self, "_call", call)

    def __setattr__(self, name: str, value: Any) -> None:
        self._call.setdefault("props", {})[name] = value


class RecordingLayout:
    """Stands in for ``UILayout``: every call is recorded in ``calls`` (shared by children)."""

    def __init__(self, calls: list | None = None) -> None:
        self.calls: list[dict] = [] if calls is None else calls

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)

        def record(*args: Any, **kwargs: Any) -> Any:
            call = {"name": name, "args": args, **kwargs}
            self.calls.append(call)
            if name == "operator":
                return _Props(call)
            return RecordingLayout(self.calls)

        return record

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "calls":
            object.__setattr__(self, name, value)

    # helpers for assertions
    def operators(self) -> list[dict]:
        return [c for c in self.calls if c["name"] == "operator"]

    def texts(self) -> list[str]:
        return [str(c.get("text", "")) for c in self.calls if "text" in c]


class FakePanel:
    """``self`` for ``Panel.draw(self, context)``: only ``layout`` is read."""

    def __init__(self) -> None:
        self.layout = RecordingLayout()


# --- AWS Batch resources in moto --------------------------------------------------------------


def create_batch_resources(settings: Any) -> dict[str, str]:
    from addon.core.aws.session import client

    iam = client("iam", settings)
    role = iam.create_role(RoleName="abr-addon-service", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    batch = client("batch", settings)
    ce = batch.create_compute_environment(
        computeEnvironmentName="abr-addon-ce", type="UNMANAGED", state="ENABLED", serviceRole=role
    )
    queue = batch.create_job_queue(
        jobQueueName="abr-addon-queue",
        state="ENABLED",
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce["computeEnvironmentArn"]}],
    )
    defs = {}
    for name, command in (("abr-addon-render", ["render"]), ("abr-addon-stitch", ["stitch"])):
        defs[name] = batch.register_job_definition(
            jobDefinitionName=name,
            type="container",
            containerProperties={"image": "abr-worker:test", "vcpus": 2, "memory": 2048, "command": command},
        )["jobDefinitionArn"]
    return {
        "job_queue": queue["jobQueueArn"],
        "render_job_definition": defs["abr-addon-render"],
        "stitch_job_definition": defs["abr-addon-stitch"],
    }


def configure_prefs(endpoint: str, bucket: str, resources: dict[str, str], backend: str = "AWS") -> None:
    p = prefs()
    p.profile = ""
    p.region = "us-east-1"
    p.endpoint_url = endpoint
    p.bucket = bucket
    p.job_queue = resources.get("job_queue", "")
    p.render_job_definition = resources.get("render_job_definition", "")
    p.stitch_job_definition = resources.get("stitch_job_definition", "")
    p.gpu_job_queue = ""
    p.log_group = ""
    p.default_backend = backend
    p.default_chunk_size = 10
    # what an earlier test's Connect left behind (a stack, its repository and image tags)
    # would otherwise feed the preflight check of the next test
    p.stack_name = ""
    p.repository_uri = ""
    p.image_tags = ""


def submit_direct(settings: Any, bucket: str, resources: dict[str, str], blend: str, submission_id: str) -> Any:
    """A submission made straight through the core AWS backend (no packing), recorded where
    the add-on keeps its records; returns (spec, record)."""
    from addon.core.backends.aws_batch.backend import AwsBatchBackend
    from addon.core.records import RecordStore
    from addon.core.storage import S3Store
    from tests.helpers import make_spec

    spec = make_spec(root=f"s3://{bucket}/", submission_id=submission_id)
    spec_uri = f"s3://{bucket}/submissions/{submission_id}/spec.json"
    S3Store(settings).put_bytes(spec.to_json().encode(), spec_uri)
    backend = AwsBatchBackend(
        settings, resources["job_queue"], resources["render_job_definition"], resources["stitch_job_definition"]
    )
    record = backend.submit(spec, spec_uri, blend)
    RecordStore(mod("blender.config").records_dir()).save(record)
    return spec, record

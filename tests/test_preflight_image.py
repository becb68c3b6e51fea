"""The worker image is the artist's exact Blender version, or preflight says so: no image
for the line is an error, another patch (or only other lines) a warning, each naming the
exact publish-image command (the tags read from ECR in moto, as publish-image pushes them)."""

from __future__ import annotations

import json

from addon.core.aws import deploy, images
from addon.core.aws.session import client
from addon.core.submit.preflight import CheckContext, check_scene
from addon.core.submit.preflight_aws import check_image_tags, check_repository_image
from addon.core.submit.scene import SceneSnapshot

STACK = "abr-image-check"
MEDIA_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
CMD = "aws-batch-render publish-image --stack s --blender 5.2.3"


def test_the_exact_version_or_a_finding_with_the_command():
    published_521 = images.image_tags("5.2.1", "a" * 64)  # blender-5.2 now names 5.2.1
    assert check_image_tags([published_521], "5.2.1", "s").mismatch_command == ""
    got = check_image_tags([published_521, images.image_tags("4.5.15", "b" * 64)], "5.2.3", "s")
    assert (got.missing_command, got.mismatch_command, got.has) == ("", CMD, "5.2.1")
    # 5.2.3 was published before 5.2.1 moved the moving tag: the jobs would run 5.2.1
    old_523 = ["blender-5.2.3", "blender-5.2.3-" + "c" * 12]
    assert check_image_tags([old_523, published_521], "5.2.3", "s").mismatch_command == CMD
    assert check_image_tags([images.image_tags("4.5.15", "b" * 64)], "5.2.3", "s").missing_command == CMD
    assert check_image_tags([], "5.2.3", "s", "eu-west-1").missing_command == CMD + " --region eu-west-1"


def _snapshot(version: str) -> SceneSnapshot:
    return SceneSnapshot(
        blend_path="/p/a.blend", scene="Scene", blender_version=version, engine="BLENDER_WORKBENCH",
        frame_start=1, frame_end=1, frame_step=1, fps=24, fps_base=1.0, resolution_x=64, resolution_y=36,
        resolution_percentage=100, file_format="PNG", has_camera=True,
    )  # fmt: skip


def test_the_finding_reads_the_repository_in_ecr(aws_settings):
    out = deploy.deploy_stack(STACK, aws_settings, poll_seconds=0).outputs
    ecr = client("ecr", aws_settings)
    name = out.repository_uri.split("/", 1)[1]

    def push(version: str, digest: str) -> None:
        manifest = json.dumps({"schemaVersion": 2, "mediaType": MEDIA_TYPE, "layers": [], "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json", "size": 2, "digest": digest}})  # fmt: skip
        for tag in images.image_tags(version, digest[7:]):
            ecr.put_image(repositoryName=name, imageManifest=manifest, imageManifestMediaType=MEDIA_TYPE, imageTag=tag)

    def findings(version: str) -> dict[str, tuple[str, str]]:
        image = check_repository_image(out.repository_uri, version, STACK, aws_settings)
        ctx = CheckContext(backend="aws", stack=STACK, image_missing_command=image.missing_command,
                           image_mismatch_command=image.mismatch_command, image_has=image.has)  # fmt: skip
        return {f.code: (f.severity, f.message) for f in check_scene(_snapshot(version), ctx).findings}

    cmd = f"aws-batch-render publish-image --stack {STACK} --blender 5.2.3 --region us-east-1"
    assert findings("5.2.3")["IMAGE_MISSING"] == (
        "error",
        f"The stack's repository has no worker image for Blender 5.2: publish it with `{cmd}`",
    )
    push("5.2.1", "sha256:" + "1" * 64)
    assert findings("5.2.3") == {"IMAGE_MISMATCH": ("warning", (
        "The stack's worker image is Blender 5.2.1, not this Blender 5.2.3: renders may differ; "
        f"publish the exact version with `{cmd}`"))}  # fmt: skip
    push("5.2.3", "sha256:" + "3" * 64)  # publish-image moves blender-5.2 to the new image
    assert findings("5.2.3") == {}
    assert "IMAGE_MISMATCH" in findings("5.2.1")  # blender-5.2 no longer names 5.2.1


def test_the_panel_check_uses_the_listed_tags(tiny_scene):
    """The add-on's check reads the tags the status timer listed (no AWS call of its own)."""
    import pytest

    bpy = pytest.importorskip("bpy")
    from test_addon_support import configure_prefs, ensure_installed, mod, prefs, reset_addon_state

    ensure_installed()
    reset_addon_state()
    bpy.ops.wm.open_mainfile(filepath=str(tiny_scene))
    configure_prefs("http://127.0.0.1:9", "abr-test", {"job_queue": "q"}, backend="AWS")
    p = prefs()
    p.repository_uri = "123456789012.dkr.ecr.us-east-1.amazonaws.com/w"
    here = ".".join(str(v) for v in bpy.app.version[:3])
    line = here.rsplit(".", 1)[0]
    try:
        cases = (
            (f"blender-{line}, blender-{line}.99", ("", "99")),  # another patch published last
            (f"blender-{line}, blender-{here}", ("", "")),  # the exact version
            ("blender-4.1", ("aws-batch-render publish-image", "")),  # nothing for this line
        )
        for tags, want in cases:
            p.image_tags = tags
            ctx = mod("blender.ops_check").check_context(bpy.context.scene, bpy.context, False)
            assert ctx.image_missing_command.startswith(want[0]) and ctx.image_has.endswith(want[1]), (tags, ctx)
            assert bool(ctx.image_mismatch_command) == bool(want[1])
            if want[0]:
                assert ctx.image_missing_command.endswith(f"--blender {here}")
    finally:
        p.repository_uri = p.image_tags = ""
        reset_addon_state()

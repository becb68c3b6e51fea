"""What the preflight check adds to ``submit``, measured side by side in one run.

    .venv/bin/python bench/preflight.py [--repeats 7]

``submit`` reads the scene in a child Blender; the check gathers its facts in that same
child (no second start) and then runs in the parent. On the demo scene (48 frames,
320x180, Cycles: what ``scripts/demo.sh`` renders) this times, alternating runs, what
``submit --backend local`` does before it hands the job to the backend (the render itself
is the same either way):

- before: the child Blender that reads the scene, with the facts gathering switched off,
  then packing, the upload into a fresh file:// store and the spec;
- after: the same with the facts (what ``submit`` runs now) and the check (the CLI's
  ``preflight``, as ``submit`` calls it) between reading and packing.

The child's wall time is noisy on a loaded machine, so the facts gathering and
``check_scene`` are also timed alone (CPU time), which is the added cost itself.

Prints each side's median wall time, the difference (target < 1 s) and the ratio. The
AWS backend adds one ``describe_stacks`` and one ``ecr:DescribeImages`` on top (network
round trips, not measured here).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from addon.cli.check import preflight  # noqa: E402
from addon.core.aws.session import AwsSettings  # noqa: E402
from addon.core.storage import path_to_uri  # noqa: E402
from addon.core.submit.options import SubmitOptions  # noqa: E402
from addon.core.submit.pipeline import prepare_submission  # noqa: E402
from addon.core.submit.preflight import check_scene  # noqa: E402
from addon.core.submit.scene import SceneSnapshot  # noqa: E402

CHILD = """
import importlib.util, sys
spec = importlib.util.spec_from_file_location("abr_snapshot", sys.argv[1])
snap = importlib.util.module_from_spec(spec)
spec.loader.exec_module(snap)
gather = snap.gather_facts
if sys.argv[2] == "off":
    snap.gather_facts = lambda scene: {}
code = snap.main([sys.argv[3]])
if sys.argv[2] == "on":  # the facts alone, in the same process: CPU time, little noise
    import time, bpy
    t = time.process_time()
    for _ in range(20):
        gather(bpy.context.scene)
    print("ABR_FACTS_S:", (time.process_time() - t) / 20, flush=True)
import os
os._exit(code)
"""


FACTS: list[float] = []


CHECK_ARGS = argparse.Namespace(backend="local", device="", allow_missing=False, stack="", gpu_queue="")


def read(blend: Path, facts: bool) -> tuple[float, SceneSnapshot]:
    """The scene read (and with ``facts``, the check); seconds, snapshot."""
    script = str(ROOT / "addon" / "blender" / "snapshot.py")
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, script, "on" if facts else "off", str(blend)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    line = next(x for x in proc.stdout.splitlines() if x.startswith("ABR_SNAPSHOT_JSON:"))
    FACTS.extend(float(x.split()[1]) for x in proc.stdout.splitlines() if x.startswith("ABR_FACTS_S:"))
    snapshot = SceneSnapshot.from_dict(json.loads(line.split(":", 1)[1]))
    if facts:
        preflight(CHECK_ARGS, snapshot, AwsSettings())
    return time.perf_counter() - started, snapshot


def submit(blend: Path, facts: bool, store: Path) -> tuple[float, float, SceneSnapshot]:
    """``submit`` up to the backend: (seconds in all, seconds reading + checking, snapshot)."""
    started = time.perf_counter()
    seconds, snapshot = read(blend, facts)
    prepare_submission(blend, snapshot, SubmitOptions(chunk_size=8, threads=1), path_to_uri(store, directory=True))
    return time.perf_counter() - started, seconds, snapshot


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    env = {**os.environ, "BLENDER_USER_RESOURCES": tempfile.mkdtemp(prefix="abr-bench-")}
    os.environ.update(env)
    with tempfile.TemporaryDirectory() as tmp:
        blend = Path(tmp) / "demo.blend"
        subprocess.run(
            [sys.executable, str(ROOT / "demo" / "make_scene.py"), str(blend), "--frames", "48",
             "--size", "320x180", "--samples", "16"],
            check=True, capture_output=True,
        )  # fmt: skip
        read(blend, True)  # warm the file cache
        before, after, read_before, read_after = [], [], [], []
        for i in range(args.repeats):
            total, seconds, _ = submit(blend, False, Path(tmp) / f"store-off-{i}")
            before.append(total)
            read_before.append(seconds)
            total, seconds, snapshot = submit(blend, True, Path(tmp) / f"store-on-{i}")
            after.append(total)
            read_after.append(seconds)
    sides = (("submit up to the backend", before, after), ("scene read (+ check)", read_before, read_after))
    for name, off, on in sides:
        b, a = statistics.median(off), statistics.median(on)
        print(f"{name}: without the check {b:.3f} s, with it {a:.3f} s (medians of {args.repeats}, side by side)")
        print(f"  added by the check: {a - b:+.3f} s (target < 1 s); ratio with/without {a / b:.3f}")
    print(f"gathering the facts alone: {statistics.median(FACTS) * 1000:.2f} ms CPU (median)")
    t = time.process_time()
    for _ in range(1000):
        check_scene(snapshot)
    print(f"check_scene: {(time.process_time() - t):.3f} ms CPU per call")
    print(f"findings on the demo scene: {check_scene(snapshot).codes or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

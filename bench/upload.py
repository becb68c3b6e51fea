"""Benchmark: content-addressed upload vs raw boto3 ``upload_file``, side by side in one run.

    python bench/upload.py [--size-mb 200] [--concurrency 10] [--endpoint URL --bucket NAME]

Builds a synthetic project (many small files and a few large ones, ``--size-mb`` in
all), then uploads the same bytes to an S3 endpoint three ways with the same transfer
settings (multipart threshold and chunk size, ``max_concurrency``):

1. raw: boto3 ``client.upload_file`` for each file, one after the other;
2. raw, threaded: the same ``upload_file`` calls from ``--concurrency`` threads;
3. ours: ``addon.core.upload.upload_inputs`` (existence check + one shared transfer
   manager), keys = sha256 of the bytes.

Then the resubmit: ``upload_inputs`` again on the unchanged project must send 0 bytes.
Without ``--endpoint`` a moto server is started on a free port (no AWS account needed);
its numbers measure the client side plus moto's own CPU cost on this machine, so compare
the ratios, not the absolute MB/s, with a real bucket.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from addon.core.aws.session import AwsSettings, client
from addon.core.storage import S3Store
from addon.core.submit.upload import upload_inputs


def make_project(root: Path, size_mb: int) -> dict[str, str]:
    """70% of the bytes in 4 large files, 30% in 100 KiB files; returns relpath -> sha256."""
    total = size_mb * 1024 * 1024
    large, small_size = 4, 100 * 1024
    large_size = int(total * 0.7) // large
    small = max(1, (total - large * large_size) // small_size)
    manifest = {}
    rng = os.urandom
    for i in range(large):
        manifest.update(_write(root / "caches" / f"sim_{i}.vdb", rng(large_size)))
    for i in range(small):
        manifest.update(_write(root / "textures" / f"tex_{i // 100:02d}" / f"t{i:05d}.png", rng(small_size)))
    return manifest


def _write(path: Path, data: bytes) -> dict[str, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {path.as_posix(): hashlib.sha256(data).hexdigest()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--endpoint", default="", help="S3 endpoint (default: a local moto server)")
    parser.add_argument("--bucket", default="abr-bench")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args(argv)

    moto = None
    endpoint = args.endpoint
    if not endpoint:
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
        from tests.helpers import start_moto_server

        moto, endpoint = start_moto_server()
    try:
        settings = AwsSettings(region=os.environ.get("AWS_REGION", "us-east-1"), endpoint_url=endpoint)
        s3 = client("s3", settings)
        if moto is not None:
            s3.create_bucket(Bucket=args.bucket)
        store = S3Store(settings, max_concurrency=args.concurrency, s3_client=s3)
        config = store.transfer_config()
        with tempfile.TemporaryDirectory(prefix="abr-bench-") as tmp:
            pack = Path(tmp)
            manifest = {str(Path(p).relative_to(pack)): sha for p, sha in make_project(pack, args.size_mb).items()}
            files = sorted(manifest)
            nbytes = sum((pack / rel).stat().st_size for rel in files)
            print(f"project: {len(files)} files, {nbytes / 1e6:.1f} MB; endpoint {endpoint}; "
                  f"max_concurrency {args.concurrency}, multipart {config.multipart_threshold >> 20} MiB")

            def raw_one(prefix: str, rel: str) -> None:
                s3.upload_file(str(pack / rel), args.bucket, f"{prefix}/{rel}", Config=config)

            results = {}
            start = time.perf_counter()
            for rel in files:
                raw_one("raw-seq", rel)
            results["raw upload_file, sequential"] = time.perf_counter() - start

            start = time.perf_counter()
            with ThreadPoolExecutor(args.concurrency) as pool:
                list(pool.map(lambda rel: raw_one("raw-threads", rel), files))
            results[f"raw upload_file, {args.concurrency} threads"] = time.perf_counter() - start

            start = time.perf_counter()
            sent, count = upload_inputs(pack, manifest, f"s3://{args.bucket}/inputs/", store,
                                        concurrency=args.concurrency)
            results["upload_inputs (ours)"] = ours = time.perf_counter() - start
            assert (sent, count) == (nbytes, len(files)), (sent, count)

            start = time.perf_counter()
            resent, recount = upload_inputs(pack, manifest, f"s3://{args.bucket}/inputs/", store,
                                            concurrency=args.concurrency)
            resubmit = time.perf_counter() - start

        print(f"{'method':34} {'seconds':>8} {'MB/s':>8} {'ours/this MB/s':>15}")
        for name, seconds in results.items():
            print(f"{name:34} {seconds:8.2f} {nbytes / 1e6 / seconds:8.1f} {seconds / ours:15.2f}")
        print(f"resubmit (unchanged project): {resent} bytes, {recount} files uploaded, "
              f"{resubmit:.2f} s to check {len(files)} keys")
        if args.json:
            print(json.dumps({"files": len(files), "bytes": nbytes, "seconds": results,
                              "resubmit_bytes": resent, "resubmit_seconds": resubmit}))
        return 0 if resent == 0 else 1
    finally:
        if moto is not None:
            moto.terminate()
            moto.wait(timeout=10)


if __name__ == "__main__":
    sys.exit(main())

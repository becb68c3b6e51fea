#!/usr/bin/env bash
# The worker image tier of CI: builds the real Dockerfile with buildah for every Blender
# version the image supports, on debootstrap stand-ins of its Debian bases, then runs the
# image tests (tests/test_image_*.py, marker `image`): render Cycles + EEVEE slices and
# stitch inside each image as its USER, ffprobe the video, pip freeze == constraints,
# size within 10% of requirements/image-sizes.json, publish-image with buildah to a local
# registry. Bases and layers are cached outside the repository ($IMAGE_CACHE): cold, this
# debootstraps two Debians and downloads bpy twice; warm, it only rebuilds changed layers.
#   scripts/image_tier.sh [VERSION ...]   (default: 5.2.3 4.5.15; any bpy version with a constraints
#   file builds; extra versions are built only)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/image_common.sh
start=$SECONDS
ensure_tools
# leave no working containers (publish-image's build stages, a killed test) and so no mounts
trap 'bh rm --all >/dev/null 2>&1 || true' EXIT
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(5.2.3 4.5.15)
suites=()
declare -A python_for=()
for v in "${versions[@]}"; do
  read -r py suite < <(image_args "$v") || true
  [ -n "${suite:-}" ] || { echo "error: no Python/Debian base for bpy $v (see above)" >&2; exit 1; }
  python_for[$v]=$py
  suites+=("$suite")
done
scripts/image_bases.sh "${suites[@]}"
echo "==> bases ready after $((SECONDS - start)) s"
for v in "${versions[@]}"; do
  t=$SECONDS
  echo "==> buildah build $WORKER_IMAGE:$v"
  bh build --isolation chroot --pull=never --layers --quiet \
    --build-arg "BLENDER_VERSION=$v" --build-arg "PYTHON_VERSION=${python_for[$v]}" -t "$WORKER_IMAGE:$v" . >/dev/null
  echo "==> built $WORKER_IMAGE:$v in $((SECONDS - t)) s, $(bh images --format '{{.Size}}' "$WORKER_IMAGE:$v")"
done
bh rm --all >/dev/null 2>&1 || true      # working containers a killed run left behind
bh rmi --prune >/dev/null 2>&1 || true   # dangling layers of older builds
t=$SECONDS
AWS_BATCH_RENDER_IMAGE_CACHE=$IMAGE_CACHE .venv/bin/python -m pytest -m image tests/test_image_worker.py \
  tests/test_image_publish.py -q
echo "==> image tests in $((SECONDS - t)) s; image tier total $((SECONDS - start)) s"

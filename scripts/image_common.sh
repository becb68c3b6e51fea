# Sourced by the image tier scripts: where the cache lives and how buildah is called.
# Everything cached stays OUTSIDE the repository, so a fresh clone on the same machine
# reuses it: the debootstrap bases (tarballs) and buildah's own storage (images, layers).
IMAGE_CACHE=${AWS_BATCH_RENDER_IMAGE_CACHE:-/var/cache/aws-batch-render-ci}
DEBIAN_MIRROR=${AWS_BATCH_RENDER_DEBIAN_MIRROR:-http://deb.debian.org/debian}
WORKER_IMAGE=localhost/aws-batch-render-worker
# Blender version -> the Debian release whose own python3 matches the bpy wheel's tag.
# Must agree with the Dockerfile's stages (tests/test_dockerfile.py checks).
declare -A DEBIAN_FOR_BLENDER=([5.2.3]=trixie [4.5.15]=bookworm)

bh() {  # buildah on the cache's storage; chroot isolation works where podman/runc do not
  buildah --root "$IMAGE_CACHE/storage" --runroot "$IMAGE_CACHE/runroot" --storage-driver overlay "$@"
}

ensure_tools() {  # idempotent: installs only what is missing
  local missing=()
  command -v buildah >/dev/null || missing+=(buildah)
  command -v debootstrap >/dev/null || missing+=(debootstrap)
  command -v skopeo >/dev/null || missing+=(skopeo)
  [ -x /usr/bin/docker-registry ] || missing+=(docker-registry)
  command -v ffprobe >/dev/null || missing+=(ffmpeg)
  if [ ${#missing[@]} -gt 0 ]; then
    echo "==> apt-get install ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  # the registry package starts a system service we do not use; the tests start their own
  if command -v systemctl >/dev/null && systemctl is-active --quiet docker-registry 2>/dev/null; then
    systemctl stop docker-registry || true
  fi
}

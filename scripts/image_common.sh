# Sourced by the image tier scripts: where the cache lives and how buildah is called.
# Everything cached stays OUTSIDE the repository, so a fresh clone on the same machine
# reuses it: the debootstrap bases (tarballs) and buildah's own storage (images, layers).
IMAGE_CACHE=${AWS_BATCH_RENDER_IMAGE_CACHE:-/var/cache/aws-batch-render-ci}
DEBIAN_MIRROR=${AWS_BATCH_RENDER_DEBIAN_MIRROR:-http://deb.debian.org/debian}
WORKER_IMAGE=localhost/aws-batch-render-worker

image_args() {  # $1 = bpy version -> "PYTHON SUITE": the wheel's Python (from its constraints
  # file, else the package index) and the Debian release whose own python3 it is
  .venv/bin/python - "$1" <<'PY'
import sys
from pathlib import Path
from addon.core.aws.bpy_wheels import debian_suite
from addon.core.aws.image_versions import build_version
full, python = build_version(sys.argv[1], Path("."), Path("Dockerfile").read_text())
print(python, debian_suite(python))
PY
}

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

# syntax=docker/dockerfile:1
# The worker image AWS Batch runs: `python -m worker render|stitch` (see worker/README.md).
#
#   docker build --build-arg BLENDER_VERSION=5.2.3  --build-arg PYTHON_VERSION=3.13 -t aws-batch-render-worker:5.2.3 .
#   docker build --build-arg BLENDER_VERSION=4.2.23 --build-arg PYTHON_VERSION=3.11 -t aws-batch-render-worker:4.2.23 .
# (`aws-batch-render publish-image --blender X.Y.Z` looks both up, builds and pushes.)
#
# Any Blender with a bpy wheel on the package index (4.2 and newer). The wheel exists for
# one Python per Blender version (cp311 for bpy 4.2-5.0, cp313 for 5.1+), read from the
# wheel's tag on the index (addon/core/aws/bpy_wheels.py), and passed as PYTHON_VERSION.
# The base is the Debian release whose OWN python3 is that version: Debian 12 (bookworm,
# Python 3.11), Debian 13 (trixie, Python 3.13). One stage per Python; PYTHON_VERSION
# picks it (BuildKit and buildah build only the one used).
#
# Why debian:*-slim with Debian's Python and not python:3.x-slim: CI has no image registry
# to pull from, so it builds this Dockerfile on base images it makes itself with
# `debootstrap --variant=minbase` (scripts/image_bases.sh). The official debian:*-slim
# images are exactly that (debuerreotype: minbase + the same dpkg excludes), so what CI
# builds and runs is what users get. python:3.x-slim adds a Python compiled from source
# under /usr/local, which no local stand-in reproduces faithfully.
# The stand-in differs only in its build date and in carrying the CI machine's CA bundle
# (PIP_CERT, for its TLS proxy); see scripts/image_bases.sh.
#
# Reproducible: every package pip installs (bpy's own dependencies, pip and the setuptools
# that builds the project, no build isolation) is pinned by
# requirements/constraints-bpy-${BLENDER_VERSION}.txt, written by scripts/make_constraints.py
# (`python scripts/make_constraints.py X.Y.Z` for a version that has none yet).
# The pins here must equal scripts/bootstrap.sh and requirements/runtime.txt
# (tests/test_dockerfile.py and tests/test_image_constraints.py check).
ARG BLENDER_VERSION=5.2.3
ARG PYTHON_VERSION=3.13

FROM debian:trixie-slim AS python-3.13
FROM debian:bookworm-slim AS python-3.11

FROM python-${PYTHON_VERSION} AS worker
ARG BLENDER_VERSION
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# Debian's python3 (+ venv, since Debian's own Python refuses system-wide pip installs),
# Debian's ffmpeg (libx264/libx265/libvpx/libaom/SVT-AV1 and zimg for EXR tone mapping),
# and the X11/GL libraries the bpy wheel links against; EGL + Mesa (llvmpipe) let EEVEE
# and Workbench render without a GPU. Without EGL they abort the render (SIGABRT).
# The apt cache is cleaned here, not left to the base image's apt hook.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      python3 python3-venv \
      ffmpeg \
      libx11-6 libxrender1 libxfixes3 libxi6 libxkbcommon0 libsm6 libice6 libgl1 libxext6 libxcb1 \
      libegl1 libegl-mesa0 libgl1-mesa-dri \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb \
 && python3 -m venv /opt/venv

WORKDIR /opt/aws-batch-render
# only this version's pins: adding another version's file rebuilds nothing here
COPY requirements/runtime.txt requirements/constraints-bpy-${BLENDER_VERSION}.txt requirements/
RUN pip install -c "requirements/constraints-bpy-${BLENDER_VERSION}.txt" pip \
 && pip install -c "requirements/constraints-bpy-${BLENDER_VERSION}.txt" setuptools \
      "bpy==${BLENDER_VERSION}" -r requirements/runtime.txt

# The project itself last, so code changes do not reinstall Blender. (No `pip check`: the
# bpy 4.5 wheel's metadata claims a cp39 tag, which pip 26 reports as unsupported; the
# image tier compares `pip freeze` with the constraints instead.)
COPY pyproject.toml ./
COPY addon/ addon/
COPY worker/ worker/
RUN pip install --no-deps --no-build-isolation . \
 && rm -rf build *.egg-info \
 && python -c "import worker.render, worker.stitch, addon.core.jobspec"

RUN useradd --create-home --uid 10001 render \
 && mkdir -p /scratch \
 && chown render /scratch
USER render
ENV WORKER_SCRATCH=/scratch \
    BLENDER_USER_RESOURCES=/home/render/.config/blender
WORKDIR /home/render
ENTRYPOINT ["python", "-m", "worker"]
CMD ["--help"]

#!/usr/bin/env bash
# Stand-ins for the Dockerfile's base images, made on this machine (no image registry is
# reachable here): `debootstrap --variant=minbase SUITE` is what the official
# debian:SUITE-slim image is built from (debuerreotype, minbase + slimming). The stand-in
# repeats the slimming (dpkg path excludes for docs/man/locales, empty apt lists) and the
# same apt sources (SUITE, SUITE-updates, SUITE-security), and is tagged with the official
# name, docker.io/library/debian:SUITE-slim, in the CI's own buildah storage only.
# Differences from the official image: built today from the live mirror (the official one
# is rebuilt every few weeks), and this machine's CA bundle is added as
# /usr/local/share/ca-certificates/ci-host.crt with PIP_CERT pointing at it, because pip
# here reaches the package index through a TLS-inspecting proxy.
# Cached: rootfs tarballs under $IMAGE_CACHE/bases, images in $IMAGE_CACHE/storage.
#   scripts/image_bases.sh [bookworm|trixie ...]   (default: both)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/image_common.sh
ensure_tools
mkdir -p "$IMAGE_CACHE/bases"

make_rootfs() {  # $1 suite -> $IMAGE_CACHE/bases/$1-minbase.tar
  local suite=$1 tar="$IMAGE_CACHE/bases/$1-minbase.tar" dir
  [ -s "$tar" ] && return 0
  dir=$(mktemp -d "$IMAGE_CACHE/bases/$suite.XXXX")
  echo "==> debootstrap --variant=minbase $suite (cold cache: a few minutes)"
  debootstrap --variant=minbase "$suite" "$dir" "$DEBIAN_MIRROR" >"$dir.log" 2>&1 \
    || { tail -20 "$dir.log" >&2; rm -rf "$dir"; exit 1; }
  # the slimming debuerreotype applies to the -slim images
  cat >"$dir/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
CFG
  rm -f "$dir/etc/apt/sources.list"
  cat >"$dir/etc/apt/sources.list.d/debian.sources" <<SRC
Types: deb
URIs: $DEBIAN_MIRROR
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${DEBIAN_MIRROR%/debian}/debian-security
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  mkdir -p "$dir/usr/local/share/ca-certificates"
  cp /etc/ssl/certs/ca-certificates.crt "$dir/usr/local/share/ca-certificates/ci-host.crt"
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/*.bin "$dir"/var/cache/apt/archives/*.deb \
    "$dir"/usr/share/doc/*/changelog* "$dir"/usr/share/man/* "$dir"/usr/share/info/* "$dir"/var/log/*.log
  tar --numeric-owner -C "$dir" -cf "$tar.part" . && mv "$tar.part" "$tar"
  rm -rf "$dir" "$dir.log"
}

make_image() {  # $1 suite -> docker.io/library/debian:$1-slim in the CI storage
  local suite=$1 ref="docker.io/library/debian:$1-slim" ctr
  if bh inspect --type image "$ref" >/dev/null 2>&1; then return 0; fi
  make_rootfs "$suite"
  echo "==> importing the $suite stand-in as $ref"
  ctr=$(bh from --pull=never scratch)
  bh add "$ctr" "$IMAGE_CACHE/bases/$suite-minbase.tar" / >/dev/null
  bh config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env PIP_CERT=/usr/local/share/ca-certificates/ci-host.crt \
    --cmd bash --label org.aws-batch-render.stand-in="debootstrap --variant=minbase $suite" "$ctr"
  bh commit --quiet --rm "$ctr" "$ref" >/dev/null
}

suites=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(bookworm trixie)
for s in "${suites[@]}"; do make_image "$s"; done

#!/usr/bin/env bash
# The recipe of `debian:trixie-slim` on a machine that reaches Debian's archive but no container registry: a
# minbase debootstrap of trixie, trimmed the way the official slim image is (no documentation, man pages or
# translations, no apt caches or lists; dpkg keeps them out of later installs too). cluster/images/images.py
# makes the result the image `docker.io/library/debian:trixie-slim` in buildah's storage, so the project's
# Dockerfiles build unchanged, and caches it under the sha256 of this file: change the recipe here, and the base
# and every image on it are rebuilt.
#
# Usage: rootfs.sh <empty directory>   (as root; the mirror is debootstrap's default)
set -euo pipefail
suite=trixie
root=${1:?usage: rootfs.sh <empty directory>}

debootstrap --variant=minbase --keyring=/usr/share/keyrings/debian-archive-keyring.gpg "$suite" "$root"

# Updates and security fixes come from the same archive, as in the official image (debootstrap writes only the suite).
read -r _ mirror _ < "$root/etc/apt/sources.list"
cat > "$root/etc/apt/sources.list" <<SOURCES
deb $mirror $suite main
deb $mirror $suite-updates main
deb ${mirror%/debian}/debian-security $suite-security main
SOURCES

# What makes it "slim": later package installs leave these paths out too (copyright files stay).
cat > "$root/etc/dpkg/dpkg.cfg.d/slim" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
DPKG
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/lintian/*
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +

# apt in a container: no package cache kept after an install, no translations, services never started.
cat > "$root/etc/apt/apt.conf.d/docker-clean" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
APT::AutoRemove::SuggestsImportant "false";
APT
printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"

# No state of this build: package lists and caches, logs, the host's name and resolver, a machine id.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
       "$root"/var/lib/dpkg/*-old "$root"/var/log/* "$root"/tmp/* "$root"/var/tmp/*
mkdir -p "$root/var/lib/apt/lists/partial" "$root/var/cache/apt/archives/partial"
: > "$root/etc/machine-id"
: > "$root/etc/resolv.conf"
printf 'localhost\n' > "$root/etc/hostname"

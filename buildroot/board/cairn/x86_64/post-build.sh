#!/usr/bin/env bash
# Buildroot post-build: shape the target tree for a read-only, verified root.
set -euo pipefail
TARGET_DIR="$1"
mkdir -p "$TARGET_DIR"/{data,run,tmp,boot/efi,etc/cairn/services}
# The root is read-only: machine-id lives on /data (stage 2 creates it on first boot).
ln -sfn /data/etc/machine-id "$TARGET_DIR/etc/machine-id"
echo cairn > "$TARGET_DIR/etc/hostname"

#!/usr/bin/env bash
# Buildroot post-build (BR2_ROOTFS_POST_BUILD_SCRIPT): shape the target tree for a read-only,
# verified root. Buildroot passes the target directory as $1 (and exports TARGET_DIR).
set -euo pipefail
TARGET_DIR="${1:?usage: post-build.sh TARGET_DIR}"

# Mount points: /data (the writable partition), tmpfs /run and /tmp, the ESP at /boot/efi.
mkdir -p "$TARGET_DIR"/{data,run,tmp,boot/efi}

# The root is read-only: machine-id lives on /data (stage 2 creates it on first boot).
rm -f "$TARGET_DIR/etc/machine-id"
ln -s /data/etc/machine-id "$TARGET_DIR/etc/machine-id"

# Service definitions go here (*.toml); none by default, so the directory is empty.
mkdir -p "$TARGET_DIR/etc/cairn/services"

# cairn-init mounts everything itself; an fstab would only mislead.
echo "# Cairn mounts everything itself (cairn-init); see the repository's README.md." \
  > "$TARGET_DIR/etc/fstab"

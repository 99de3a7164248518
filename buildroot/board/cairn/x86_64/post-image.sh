#!/usr/bin/env bash
# Buildroot post-image: hand the finished target tree to cairn-image, which makes the slot
# image (squashfs + dm-verity), the initramfs, the ESP with GRUB and the GPT disk.
# `cairn-image assemble` is the image tool's entry point for a prepared root file system.
set -euo pipefail
: "${BINARIES_DIR:?run from Buildroot}" "${TARGET_DIR:?}" "${BR2_EXTERNAL_CAIRN_PATH:?}"
REPO="$BR2_EXTERNAL_CAIRN_PATH/.."
TOOL="${HOST_DIR:-}/bin/cairn-image"
if [ ! -x "$TOOL" ]; then
  cargo build --release --locked --manifest-path "$REPO/Cargo.toml" -p cairn-image
  TOOL="$REPO/target/release/cairn-image"
fi
"$TOOL" assemble \
  --rootfs "$TARGET_DIR" \
  --kernel "$BINARIES_DIR/bzImage" \
  --modules "$TARGET_DIR/lib/modules" \
  --init-bin "$TARGET_DIR/sbin/init" \
  --cairnctl-bin "$TARGET_DIR/usr/bin/cairnctl" \
  --profile "$BR2_EXTERNAL_CAIRN_PATH/board/cairn/x86_64/profile.toml" \
  --out "$BINARIES_DIR/cairn"

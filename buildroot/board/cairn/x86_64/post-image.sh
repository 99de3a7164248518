#!/usr/bin/env bash
# Buildroot post-image (BR2_ROOTFS_POST_IMAGE_SCRIPT): hand the finished root file system and
# kernel to cairn-image, which makes the slot image (squashfs + dm-verity), the initramfs
# (cairn-init as /init plus the profile's modules), the ESP with the profile suite's GRUB for
# BIOS and UEFI, and
# the GPT disk: BINARIES_DIR/cairn/disk.img and manifest.json.
#
# `cairn-image assemble` is the image tool's entry point for a prepared root file system
# (`cairn-image build` makes its own root from Debian packages instead).
#
# Buildroot runs this with BINARIES_DIR, TARGET_DIR, HOST_DIR, BUILD_DIR and
# BR2_EXTERNAL_CAIRN_PATH in the environment, and HOST_DIR/bin first in PATH.
set -euo pipefail

: "${BINARIES_DIR:?run by Buildroot as BR2_ROOTFS_POST_IMAGE_SCRIPT}"
: "${HOST_DIR:?run by Buildroot}" "${BUILD_DIR:?run by Buildroot}"
EXT="${BR2_EXTERNAL_CAIRN_PATH:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)}"
REPO="$(cd "$EXT/.." && pwd)"
BOARD="$EXT/board/cairn/x86_64"
export HOST_DIR BUILD_DIR

die() { echo "post-image.sh: $*" >&2; exit 1; }

[ -f "$BINARIES_DIR/bzImage" ] || die "no $BINARIES_DIR/bzImage (BR2_LINUX_KERNEL)"
[ -f "$BINARIES_DIR/rootfs.tar" ] || die "no $BINARIES_DIR/rootfs.tar (BR2_TARGET_ROOTFS_TAR, uncompressed)"
# GRUB (boot.img, modules, core images) comes from the profile's Debian suite: cairn-image
# makes a small tools tree with mmdebstrap, so the build host needs mmdebstrap and Debian's
# package mirror, as for `cairn-image build`.
command -v mmdebstrap >/dev/null || die "cairn-image makes GRUB from Debian packages with mmdebstrap (apt-get install mmdebstrap)"

# 1. The image tool, built for the build host (not cross-compiled): a copy in HOST_DIR wins,
#    otherwise cargo builds it from this repository, outside the source tree.
TOOL="$HOST_DIR/bin/cairn-image"
if [ ! -x "$TOOL" ]; then
  TOOL_TARGET="$BUILD_DIR/host-cairn-image"
  (cd "$REPO" && cargo build --release --locked -p cairn-image --target-dir "$TOOL_TARGET")
  TOOL="$TOOL_TARGET/release/cairn-image"
fi

# 2. The root comes from rootfs.tar, not TARGET_DIR: Buildroot sets owners, modes and device
#    nodes only inside fakeroot, where it made the tar. So unpack it, and run cairn-image, in
#    fakeroot too: cp -a and mksquashfs then see the owners the tar recorded.
STAGE="$BUILD_DIR/cairn-rootfs"
rm -rf "$STAGE"
mkdir -p "$STAGE"
OUT="$BINARIES_DIR/cairn"
# The inner script's $1, $2 and $@ are its own arguments, expanded by the inner bash.
# shellcheck disable=SC2016
"$HOST_DIR/bin/fakeroot" -- bash -c 'set -euo pipefail; tar --numeric-owner -xpf "$1" -C "$2"; shift 2; exec "$@"' \
  cairn-stage "$BINARIES_DIR/rootfs.tar" "$STAGE" \
  "$TOOL" assemble \
    --rootfs "$STAGE" \
    --kernel "$BINARIES_DIR/bzImage" \
    --modules "$STAGE/lib/modules" \
    --init-bin "$STAGE/sbin/init" \
    --cairnctl-bin "$STAGE/usr/bin/cairnctl" \
    --profile "$BOARD/profile.toml" \
    --out "$OUT"

echo "post-image.sh: Cairn disk image in $OUT/disk.img"

################################################################################
#
# cairnctl
#
################################################################################

# Built from this repository (the parent of the br2-external tree), not downloaded.
CAIRNCTL_VERSION = 0.1.0
CAIRNCTL_SITE = $(BR2_EXTERNAL_CAIRN_PATH)/..
CAIRNCTL_SITE_METHOD = local
CAIRNCTL_LICENSE = Apache-2.0
CAIRNCTL_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = $(CAIRN_RSYNC_EXCLUSIONS)
CAIRNCTL_PRE_CONFIGURE_HOOKS += CAIRN_CARGO_VENDOR

# cairnctl is a second binary of the cairn-init crate.
CAIRNCTL_CARGO_BUILD_OPTS = -p cairn-init --bin cairnctl

# The default `cargo install --path ./` cannot install from a virtual workspace.
define CAIRNCTL_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 \
		$(@D)/target/$(RUSTC_TARGET_NAME)/$(if $(BR2_ENABLE_DEBUG),debug,release)/cairnctl \
		$(TARGET_DIR)/usr/bin/cairnctl
endef

$(eval $(cargo-package))

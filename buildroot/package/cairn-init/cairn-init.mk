################################################################################
#
# cairn-init
#
################################################################################

# Built from this repository (the parent of the br2-external tree), not downloaded.
CAIRN_INIT_VERSION = 0.1.0
CAIRN_INIT_SITE = $(BR2_EXTERNAL_CAIRN_PATH)/..
CAIRN_INIT_SITE_METHOD = local
CAIRN_INIT_LICENSE = Apache-2.0
CAIRN_INIT_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = $(CAIRN_RSYNC_EXCLUSIONS)
CAIRN_INIT_PRE_CONFIGURE_HOOKS += CAIRN_CARGO_VENDOR

# The workspace root is the source dir: build one crate's one binary of it.
CAIRN_INIT_CARGO_BUILD_OPTS = -p cairn-init --bin cairn-init

# The infrastructure's default install (`cargo install --path ./`) cannot install from a
# virtual workspace, and PID 1 belongs at /sbin/init. The initramfs's /init is not made
# here: cairn-image builds the initramfs from this binary.
define CAIRN_INIT_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 \
		$(@D)/target/$(RUSTC_TARGET_NAME)/$(if $(BR2_ENABLE_DEBUG),debug,release)/cairn-init \
		$(TARGET_DIR)/sbin/init
endef

$(eval $(cargo-package))

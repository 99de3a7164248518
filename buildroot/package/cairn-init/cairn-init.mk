################################################################################
#
# cairn-init
#
################################################################################

# Built from this repository (the tree's parent), not downloaded.
CAIRN_INIT_VERSION = 0.1.0
CAIRN_INIT_SITE = $(BR2_EXTERNAL_CAIRN_PATH)/..
CAIRN_INIT_SITE_METHOD = local
CAIRN_INIT_LICENSE = Apache-2.0
CAIRN_INIT_CARGO_BUILD_OPTS = -p cairn-init --bin cairn-init

define CAIRN_INIT_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 $(@D)/target/$(RUSTC_TARGET_NAME)/release/cairn-init \
		$(TARGET_DIR)/sbin/init
endef

$(eval $(cargo-package))

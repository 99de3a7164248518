################################################################################
#
# cairnctl
#
################################################################################

CAIRNCTL_VERSION = 0.1.0
CAIRNCTL_SITE = $(BR2_EXTERNAL_CAIRN_PATH)/..
CAIRNCTL_SITE_METHOD = local
CAIRNCTL_LICENSE = Apache-2.0
CAIRNCTL_CARGO_BUILD_OPTS = -p cairn-init --bin cairnctl

define CAIRNCTL_INSTALL_TARGET_CMDS
	$(INSTALL) -D -m 0755 $(@D)/target/$(RUSTC_TARGET_NAME)/release/cairnctl \
		$(TARGET_DIR)/usr/bin/cairnctl
endef

$(eval $(cargo-package))

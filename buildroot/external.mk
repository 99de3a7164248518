# Both packages build from this repository's Cargo workspace (SITE_METHOD = local).
# cargo-package vendors a crate's dependencies only as the post-process of a download, and
# a local source is rsynced, never downloaded: so vendor them here, before configuring
# (host-rustc is a dependency, so cargo exists by then). This is the one step that needs
# the network (crates.io), as the download step would for any other cargo package.
define CAIRN_CARGO_VENDOR
	mkdir -p $(BR_CARGO_HOME) $(@D)/.cargo
	cd $(@D) && $(HOST_MAKE_ENV) CARGO_HOME=$(BR_CARGO_HOME) \
		flock $(BR_CARGO_HOME)/.br-lock \
		cargo vendor --locked --versioned-dirs VENDOR > $(@D)/.cargo/config.toml
endef

# What the rsync of the repository leaves out: build products and version control.
CAIRN_RSYNC_EXCLUSIONS = \
	--exclude /target --exclude /.git --exclude /buildroot/output

include $(sort $(wildcard $(BR2_EXTERNAL_CAIRN_PATH)/package/*/*.mk))

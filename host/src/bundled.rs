//! The provider plugins built from `plugins/` and embedded in this binary.

use crate::runtime::{LoadError, PluginHost, PluginRegistry};

include!(concat!(env!("OUT_DIR"), "/bundled_plugins.rs"));

/// Loads every bundled plugin into `registry`.
pub async fn load_bundled(
    host: &PluginHost,
    registry: &mut PluginRegistry,
) -> Result<(), LoadError> {
    for (name, wasm) in BUNDLED_PLUGINS {
        let plugin = host.load(wasm, &format!("bundled:{name}")).await?;
        registry.insert(plugin)?;
    }
    Ok(())
}

//! The provider plugins built from `plugins/` and embedded in this binary,
//! and the one way the host assembles its plugin set.

use std::path::{Path, PathBuf};

use crate::policy::plugin_policy::{self, PluginPolicy};
use crate::runtime::{LoadError, PluginHost, PluginRegistry};

include!(concat!(env!("OUT_DIR"), "/bundled_plugins.rs"));

/// Loads every bundled plugin into `registry`.
pub async fn load_bundled(
    host: &PluginHost,
    registry: &mut PluginRegistry,
) -> Result<(), LoadError> {
    for (name, wasm) in BUNDLED_PLUGINS {
        let plugin = host.load(wasm, &format!("bundled:{name}")).await?;
        registry.insert_bundled(plugin)?;
    }
    Ok(())
}

/// Where the plugins come from, besides the bundled ones.
#[derive(Debug, Clone, Default)]
pub struct PluginSources {
    /// A directory of third-party `*.wasm` plugins.
    pub plugin_dir: Option<PathBuf>,
    /// The operator's plugin policy (name grants, hash pins).
    pub policy: PluginPolicy,
}

/// The bundled plugins, then those of the plugin directory, then the
/// policy's hash pins, then the name-ownership rules over all of them. A third-party plugin that fails
/// any step is refused and listed in [`PluginRegistry::refused`]; a bundled
/// plugin that fails, or an unreadable plugin directory, is an error.
pub async fn load_all(
    host: &PluginHost,
    sources: &PluginSources,
) -> Result<PluginRegistry, LoadError> {
    let mut registry = PluginRegistry::new();
    load_bundled(host, &mut registry).await?;
    if let Some(dir) = &sources.plugin_dir {
        registry.load_dir(host, dir).await?;
    }
    registry.enforce_pins(&sources.policy);
    registry.enforce_ownership(&sources.policy.grants)?;
    for slug in sources.policy.slugs() {
        if registry.get(slug).is_none() {
            tracing::warn!(plugin = slug, "the plugin policy names a plugin that is not loaded");
        }
    }
    Ok(registry)
}

/// Reads the plugin policy file; its errors name the file and every problem.
pub fn read_policy(path: &Path) -> anyhow::Result<PluginPolicy> {
    let text = std::fs::read_to_string(path).map_err(|error| {
        anyhow::anyhow!("cannot read the plugin policy {}: {error}", path.display())
    })?;
    plugin_policy::parse(&text).map_err(|problems| {
        anyhow::anyhow!(
            "the plugin policy {} is invalid:\n  - {}",
            path.display(),
            problems.join("\n  - ")
        )
    })
}

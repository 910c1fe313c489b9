//! The on-disk cache of compiled components, keyed by the sha256 of the wasm
//! and a hash of everything that makes compiled code compatible (wasmtime's
//! version, target and engine configuration). A restart does not recompile.

use std::hash::Hasher;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// Whether a load hit the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// Loaded a precompiled artifact.
    Hit,
    /// Compiled (and stored, if there is a cache).
    Compiled,
}

/// A directory of precompiled components written by this host only.
#[derive(Debug, Clone)]
pub struct ArtifactCache {
    dir: PathBuf,
    engine_tag: String,
}

impl ArtifactCache {
    /// Opens (creating) the cache directory for `engine`.
    pub fn open(dir: &Path, engine: &Engine) -> std::io::Result<Self> {
        crate::private_fs::create_private_dir(dir)?;
        Ok(ArtifactCache { dir: dir.to_owned(), engine_tag: engine_tag(engine) })
    }

    /// The artifact path for `wasm`.
    pub fn path_for(&self, wasm: &[u8]) -> PathBuf {
        let digest = hex::encode(Sha256::digest(wasm));
        self.dir.join(format!("{digest}-{}.cwasm", self.engine_tag))
    }
}

/// Compiles `wasm`, or loads its precompiled artifact from `cache`.
pub fn load_component(
    engine: &Engine,
    cache: Option<&ArtifactCache>,
    wasm: &[u8],
) -> wasmtime::Result<(Component, CacheOutcome)> {
    let Some(cache) = cache else {
        return Ok((Component::new(engine, wasm)?, CacheOutcome::Compiled));
    };
    let path = cache.path_for(wasm);
    // Read into memory rather than map the file: a file truncated under a
    // mapping would crash the host with SIGBUS.
    if let Ok(bytes) = std::fs::read(&path) {
        // SAFETY: the bytes come from our own cache directory, written by
        // `Component::serialize` of an engine whose configuration hash is in
        // the file name, and wasmtime checks the header for version and
        // configuration compatibility before using them.
        match unsafe { Component::deserialize(engine, &bytes) } {
            Ok(component) => return Ok((component, CacheOutcome::Hit)),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "discarding unusable cached artifact")
            }
        }
    }
    let component = Component::new(engine, wasm)?;
    if let Err(error) = store_artifact(&component, &path) {
        tracing::warn!(path = %path.display(), %error, "cannot write the compiled-plugin cache");
    }
    Ok((component, CacheOutcome::Compiled))
}

fn store_artifact(component: &Component, path: &Path) -> anyhow::Result<()> {
    let bytes = component.serialize()?;
    // A unique temporary name: concurrent loads of one component (threads or
    // processes) each write their own file, and the rename is atomic.
    let suffix = hex::encode(crate::crypto::random_bytes::<8>());
    let temp = path.with_extension(format!("tmp-{}-{suffix}", std::process::id()));
    std::io::Write::write_all(&mut crate::private_fs::create_private_file(&temp)?, &bytes)?;
    std::fs::rename(&temp, path)?;
    Ok(())
}

/// A short hex tag of what makes compiled code compatible with `engine`.
fn engine_tag(engine: &Engine) -> String {
    struct ShaHasher(Sha256);
    impl Hasher for ShaHasher {
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
        fn finish(&self) -> u64 {
            0
        }
    }
    let mut hasher = ShaHasher(Sha256::new());
    std::hash::Hash::hash(&engine.precompile_compatibility_hash(), &mut hasher);
    hex::encode(&hasher.0.finalize()[..8])
}

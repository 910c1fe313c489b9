//! `platos-host plugin test` and `platos-host plugin new`: the plugin author kit
//! on the command line (the work is done by `platos_host::harness`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use platos_host::harness::scaffold::{ScaffoldOptions, SdkSource, scaffold};
use platos_host::harness::{HarnessOptions, check_plugin_with};
use platos_host::runtime::{PluginHost, RuntimeConfig};

use super::Context;

/// `plugin test`: every harness check against one component.
#[derive(Args)]
pub struct TestArgs {
    /// The plugin component (.wasm).
    pub file: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Live mode: replay the recorded cases in DIR (one JSON file per case)
    /// from a mock upstream on 127.0.0.1 (see docs/plugin-authors.md).
    #[arg(long, value_name = "DIR")]
    pub fixtures: Option<PathBuf>,
    /// A value for a non-secret variable the harness cannot guess, e.g.
    /// `--var AWS_REGION=eu-west-1` (repeatable). Secrets get canaries.
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
}

/// `plugin new`: a new Rust plugin crate.
#[derive(Args)]
pub struct NewArgs {
    /// The provider slug (lower-case letters, digits, hyphens), e.g. `acme`.
    pub slug: String,
    /// The new crate's own directory (absent or empty). Default: `./<slug>`.
    #[arg(long, value_name = "PATH")]
    pub dir: Option<PathBuf>,
    /// Depend on a local SDK instead of the published version: the
    /// `plugins/sdk` directory of a Platos checkout (the build helper is
    /// expected beside it, in `plugins/build`).
    #[arg(long, value_name = "PATH", conflicts_with = "sdk_git")]
    pub sdk_path: Option<PathBuf>,
    /// Depend on the SDK and the build helper from this git repository (a
    /// Platos repository URL) instead of the published version.
    #[arg(long, value_name = "URL")]
    pub sdk_git: Option<String>,
}

/// Runs `plugin test`; exit code 1 when a check failed.
pub async fn run_test(context: &Context, args: TestArgs) -> anyhow::Result<ExitCode> {
    let wasm = std::fs::read(&args.file)
        .with_context(|| format!("cannot read the plugin {}", args.file.display()))?;
    let mut values = BTreeMap::new();
    for pair in &args.vars {
        let (name, value) =
            pair.split_once('=').with_context(|| format!("--var {pair:?} is not NAME=VALUE"))?;
        values.insert(name.to_owned(), value.to_owned());
    }
    if let Some(dir) = &args.fixtures {
        anyhow::ensure!(dir.is_dir(), "--fixtures {} is not a directory", dir.display());
    }
    let options = HarnessOptions {
        runtime: RuntimeConfig {
            cache_dir: Some(context.data_dir.join("cache").join("components")),
            ..HarnessOptions::default().runtime
        },
        origin: args.file.display().to_string(),
        fixtures: args.fixtures,
        values,
    };
    let host = PluginHost::new(options.runtime.clone())?;
    let report = check_plugin_with(&host, &wasm, &options).await;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(if report.passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Runs `plugin new`.
pub fn run_new(args: NewArgs) -> anyhow::Result<ExitCode> {
    let sdk = match (args.sdk_path, args.sdk_git) {
        (Some(path), _) => SdkSource::Path(path),
        (None, Some(url)) => SdkSource::Git(url),
        (None, None) => SdkSource::default(),
    };
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.slug));
    let made = scaffold(&ScaffoldOptions { slug: args.slug, dir, sdk: sdk.clone() })?;
    let dir = made.crate_dir.display();
    println!("created {} in {dir} (depends on {sdk})", made.crate_name);
    for file in &made.files {
        println!("  {}", file.display());
    }
    println!(
        "\nnext (the first build takes a few minutes):\n  cd {dir}\n  cargo build --release --target wasm32-wasip2\n  platos-host plugin test target/wasm32-wasip2/release/{} --fixtures fixtures",
        made.wasm_file
    );
    Ok(ExitCode::SUCCESS)
}

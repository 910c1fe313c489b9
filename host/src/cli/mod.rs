//! The command line: `serve`, `token`, `plugin`, `env`, `keys`, `rewrap`,
//! `store`.

mod env;
mod plugin;
mod serve;
mod store;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use platos_host::audit::{AuditConfig, Auditor};
use platos_host::bundled::PluginSources;
use platos_host::runtime::{PluginHost, RuntimeConfig};

/// The Platos provider host: sandboxed provider plugins, and the keys that
/// feed them.
#[derive(Parser)]
#[command(name = "platos-host", version, about, long_about = None)]
struct Cli {
    /// Where the host keeps its data (store, compiled-plugin cache).
    #[arg(long, env = "PLATOS_DATA_DIR", global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Where the store lives: `sled` (embedded, under the data directory) or
    /// postgres://USER@HOST:PORT/DATABASE (shared by several hosts; give a
    /// password through PLATOS_STORE, not on the command line).
    // A String, parsed in `run`: clap's error would echo the value, password and all.
    #[arg(
        long,
        env = "PLATOS_STORE",
        global = true,
        value_name = "sled|postgres://…",
        default_value = "sled",
        hide_env_values = true,
        hide_default_value = true
    )]
    store: String,

    /// A directory of extra plugin components (*.wasm) to load beside the bundled ones.
    #[arg(long, env = "PLATOS_PLUGIN_DIR", global = true, value_name = "DIR")]
    plugin_dir: Option<PathBuf>,

    /// The plugin policy file: names a third-party plugin may read beyond its
    /// own prefix (see docs/security.md).
    #[arg(long, env = "PLATOS_PLUGIN_POLICY", global = true, value_name = "FILE")]
    plugin_policy: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the host's HTTP server.
    Serve(serve::ServeArgs),
    /// Create, list and revoke API tokens (operator, or agent bound to one scope).
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Inspect, list and call provider plugins.
    #[command(subcommand)]
    Plugin(plugin::PluginCommand),
    /// Set, unset and list a scope's encrypted variables (ENCRYPTION_KEY from the environment).
    #[command(subcommand)]
    Env(env::EnvCommand),
    /// List a scope's provider keys (metadata only).
    #[command(subcommand)]
    Keys(env::KeysCommand),
    /// Re-encrypt every stored value under ENCRYPTION_KEY (after a rotation).
    Rewrap(env::RewrapArgs),
    /// Copy a whole store to another backend (sled to PostgreSQL or back), values still sealed.
    #[command(subcommand)]
    Store(store::StoreCommand),
    /// Print `.env.example` for the loaded plugins (bundled, plus --plugin-dir).
    EnvExample,
    /// The crash test's writer (tests only).
    #[command(hide = true)]
    StoreTorture(env::TortureArgs),
    /// The audit trail's crash test writer (tests only).
    #[command(hide = true)]
    AuditTorture(env::AuditTortureArgs),
}

/// Parses arguments, runs the command, and turns errors into a message and
/// exit code 1 (2 for usage errors, from clap).
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before any thread or file: everything the host keeps is owner-only.
    // `plugin new` writes a source tree for people, under their umask.
    if !matches!(cli.command, Command::Plugin(plugin::PluginCommand::New(_))) {
        platos_host::private_fs::restrict_umask();
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("PLATOS_LOG").unwrap_or_else(
            |_| tracing_subscriber::EnvFilter::new("info,cranelift=warn,wasmtime=warn"),
        ))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let store = match cli.store.parse() {
        Ok(store) => store,
        Err(error) => {
            eprintln!("error: --store (or PLATOS_STORE): {error}");
            return Ok(ExitCode::from(2));
        }
    };
    let context = Context {
        data_dir: data_dir(cli.data_dir),
        store,
        plugin_dir: cli.plugin_dir,
        plugin_policy: cli.plugin_policy,
    };
    match cli.command {
        Command::Serve(args) => serve::run(&context, args).await,
        Command::Token(command) => token::run(&context, command).await,
        Command::Plugin(command) => plugin::run(&context, command).await,
        Command::Env(command) => env::run_env(&context, command).await,
        Command::Keys(command) => env::run_keys(&context, command).await,
        Command::Rewrap(args) => env::run_rewrap(&context, args).await,
        Command::Store(command) => store::run(&context, command).await,
        Command::EnvExample => {
            let host = context.plugin_host()?;
            let registry = context.registry(&host).await?;
            let manifests: Vec<_> = registry.iter().map(|plugin| plugin.manifest()).collect();
            print!("{}", platos_host::envexample::render(&manifests));
            Ok(ExitCode::SUCCESS)
        }
        Command::StoreTorture(args) => env::run_torture(args),
        Command::AuditTorture(args) => env::run_audit_torture(args).await,
    }
}

/// What every command shares.
pub struct Context {
    /// The data directory.
    pub data_dir: PathBuf,
    /// Where the store lives.
    pub store: platos_host::store::StoreBackend,
    /// Extra plugins to load.
    pub plugin_dir: Option<PathBuf>,
    /// The plugin policy file, if any.
    pub plugin_policy: Option<PathBuf>,
}

impl Context {
    /// A plugin host with the compile cache under the data directory.
    pub fn plugin_host(&self) -> anyhow::Result<PluginHost> {
        PluginHost::new(RuntimeConfig {
            cache_dir: Some(self.data_dir.join("cache").join("components")),
            ..RuntimeConfig::default()
        })
    }

    /// Where plugins come from: `--plugin-dir` and `--plugin-policy`.
    pub fn plugin_sources(&self) -> anyhow::Result<PluginSources> {
        let policy = match &self.plugin_policy {
            Some(path) => platos_host::bundled::read_policy(path)?,
            None => Default::default(),
        };
        Ok(PluginSources { plugin_dir: self.plugin_dir.clone(), policy })
    }

    /// The audit trail of `--store`, recording this command's changes (the
    /// trail `serve` writes; a record that cannot be written refuses the
    /// change).
    pub async fn auditor(&self) -> anyhow::Result<Auditor> {
        let trail = self.store.open_audit(&self.data_dir).await?;
        Ok(Auditor::start(trail, &AuditConfig::default())?)
    }

    /// The bundled plugins plus those of `--plugin-dir` that load and own
    /// their names (each refused one is logged once).
    pub async fn registry(
        &self,
        host: &PluginHost,
    ) -> anyhow::Result<platos_host::runtime::PluginRegistry> {
        Ok(platos_host::bundled::load_all(host, &self.plugin_sources()?).await?)
    }
}

/// `--data-dir`, else `$XDG_DATA_HOME/platos`, else `~/.local/share/platos`,
/// else `./platos-data`.
fn data_dir(explicit: Option<PathBuf>) -> PathBuf {
    explicit
        .or_else(|| std::env::var_os("XDG_DATA_HOME").map(|dir| PathBuf::from(dir).join("platos")))
        .or_else(|| {
            std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share/platos"))
        })
        .unwrap_or_else(|| PathBuf::from("platos-data"))
}

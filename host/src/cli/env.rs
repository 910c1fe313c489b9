//! `platos-host env | keys | rewrap`: a scope's encrypted variables, its
//! provider keys, and re-encryption under a new master key.
//!
//! The master key comes from `ENCRYPTION_KEY` (and `ENCRYPTION_KEY_PREVIOUS`
//! during a rotation) in the environment, never from a flag. Values are read
//! from stdin, never from the command line, where other users can see them.

use std::io::{IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use platos_host::audit::{AuditDraft, Auditor, cli_actor};
use platos_host::crypto::{KeyId, Keyring};
use platos_host::policy::hints::near_misses;
use platos_host::policy::variants::variant_of;
use platos_host::scope::Scope;
use platos_host::store::{
    AuditAction, BlockingSecretStore, MAX_VALUE_LEN, ProviderKey, ProviderVars, SecretStore,
    SledStore, StoreBackend, StoreError, StoreOptions, UnixMillis, VarSource, default_key, rules,
};
use secrecy::SecretString;
use zeroize::Zeroizing;

use super::Context;

/// `platos-host env ...`
#[derive(Subcommand)]
pub enum EnvCommand {
    /// Set a variable. The value is read from stdin (one trailing newline is
    /// removed), e.g. `printf %s "$KEY" | platos-host env set acme/shop/prod OPENAI_API_KEY`.
    Set {
        /// The scope: `organization/project/environment`.
        #[arg(value_name = "ORG/PROJECT/ENV")]
        scope: Scope,
        /// The variable's name.
        name: String,
    },
    /// Unset a variable. Its last value stays readable by version for the
    /// grace period, so turns in flight finish.
    Unset {
        /// The scope: `organization/project/environment`.
        #[arg(value_name = "ORG/PROJECT/ENV")]
        scope: Scope,
        /// The variable's name.
        name: String,
    },
    /// List a scope's variables: names, versions, update times and sources,
    /// never values.
    List {
        /// The scope: `organization/project/environment`.
        #[arg(value_name = "ORG/PROJECT/ENV")]
        scope: Scope,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `platos-host keys ...`
#[derive(Subcommand)]
pub enum KeysCommand {
    /// List a scope's provider keys (metadata only: never the secret). The
    /// scope default of a provider is marked with `*`.
    List {
        /// The scope: `organization/project/environment`.
        #[arg(value_name = "ORG/PROJECT/ENV")]
        scope: Scope,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

/// `platos-host rewrap`
#[derive(Args)]
pub struct RewrapArgs {}

/// `platos-host store-torture`: the writer of the crash test.
#[derive(Args)]
pub struct TortureArgs {
    /// The store directory.
    #[arg(long)]
    dir: PathBuf,
    /// The prefix of the variable names written (`{prefix}_{n}`).
    #[arg(long, default_value = "T")]
    prefix: String,
    /// Stop after this many writes (default: write until killed).
    #[arg(long)]
    count: Option<u64>,
}

/// `platos-host audit-torture`: the writer of the audit trail's crash test.
#[derive(Args)]
pub struct AuditTortureArgs {
    /// The trail's directory.
    #[arg(long)]
    dir: PathBuf,
    /// This run's number: the high half of its records' ids.
    #[arg(long)]
    run: u32,
    /// Close segments at this many bytes (small: many closes to kill in).
    #[arg(long, default_value_t = 16 << 10)]
    segment_bytes: u64,
}

/// The scope the crash-test writer writes to.
const TORTURE_SCOPE: &str = "torture/store/crash";

/// The variable-to-provider mapping of the loaded plugins, and every
/// variable name their manifests declare.
async fn provider_vars(context: &Context) -> anyhow::Result<(ProviderVars, Vec<String>)> {
    let host = context.plugin_host()?;
    let registry = context.registry(&host).await?;
    let links = ProviderVars::from_manifests(registry.iter().map(|plugin| plugin.manifest()));
    let names = registry
        .iter()
        .flat_map(|plugin| plugin.manifest().env_vars.iter().map(|var| var.name.clone()))
        .collect();
    Ok((links, names))
}

/// The store of `--store`, with the keyring's current key id.
async fn open_store(
    context: &Context,
    provider_vars: ProviderVars,
) -> anyhow::Result<(Arc<dyn SecretStore>, KeyId)> {
    open_backend(context, &context.store, provider_vars).await
}

/// The store in `backend` (sled: the data directory's), under the master
/// key of the environment or the data directory, with the keyring's
/// current key id.
pub(super) async fn open_backend(
    context: &Context,
    backend: &StoreBackend,
    provider_vars: ProviderVars,
) -> anyhow::Result<(Arc<dyn SecretStore>, KeyId)> {
    // ENCRYPTION_KEY from the environment, else the key `serve` generated
    // on its first start.
    let (keyring, _) = platos_host::api::bootstrap::keyring(
        &context.data_dir,
        &|name| std::env::var_os(name),
        false,
    )?;
    let options = StoreOptions { provider_vars, ..StoreOptions::default() };
    let current = keyring.current_id();
    let store = backend.open(&context.data_dir, keyring, options).await.map_err(|error| {
        match (error, backend) {
            // A wrong key says so itself; the hint is for a store in use.
            (error @ StoreError::KeyMismatch { .. }, _) => anyhow::Error::new(error),
            (error, StoreBackend::Sled) => anyhow::Error::new(error).context(format!(
                "cannot open the store in {} (is `platos-host serve` running on this data directory?)",
                context.data_dir.join("store").display()
            )),
            (error, backend) => {
                anyhow::Error::new(error).context(format!("cannot open the store in {backend}"))
            }
        }
    })?;
    Ok((store, current))
}

/// The record of a command-line change to `name` in `scope`: with its
/// provider and variant when it is a key variable.
fn var_draft(action: AuditAction, scope: &Scope, name: &str, links: &ProviderVars) -> AuditDraft {
    AuditDraft::new(action, cli_actor()).scope(scope).linked(name, links)
}

/// Writes `draft`'s record as allowed; the change may be made only if this
/// is `Ok`.
pub(super) async fn allow(auditor: &Auditor, draft: &AuditDraft) -> anyhow::Result<()> {
    auditor.allow(draft).await.map_err(|error| {
        anyhow::anyhow!(
            "{error}; nothing was changed: a change is made only once its audit record is written"
        )
    })
}

/// Runs `env ...`.
pub async fn run_env(context: &Context, command: EnvCommand) -> anyhow::Result<ExitCode> {
    match command {
        EnvCommand::Set { scope, name } => {
            let (links, known) = provider_vars(context).await?;
            let (store, _) = open_store(context, links.clone()).await?;
            let auditor = context.auditor().await?;
            let value = read_value(&scope, &name)?;
            warn_unknown_name(&name, &known);
            let current = store.list_vars(&scope).await?.into_iter().find(|var| var.name == name);
            let action =
                if current.is_some() { AuditAction::VarRotate } else { AuditAction::VarSet };
            let draft = var_draft(action, &scope, &name, &links);
            let checked = rules::check_value(&name, &value).and_then(|()| {
                rules::check_writer(&scope, &name, VarSource::Cli, current.map(|var| var.source))
            });
            if let Err(error) = checked {
                auditor.refuse(&draft, error.code()).await;
                return Err(error.into());
            }
            allow(&auditor, &draft).await?;
            let info = match store.set_var(&scope, &name, &value, VarSource::Cli).await {
                Ok(info) => info,
                Err(error) => {
                    auditor.fail(&draft, error.code()).await;
                    return Err(error.into());
                }
            };
            println!("{name} set in {scope}: version {}", info.version);
        }
        EnvCommand::Unset { scope, name } => {
            let (links, _) = provider_vars(context).await?;
            let (store, _) = open_store(context, links.clone()).await?;
            let auditor = context.auditor().await?;
            let draft = var_draft(AuditAction::VarUnset, &scope, &name, &links);
            let current = store.list_vars(&scope).await?.into_iter().find(|var| var.name == name);
            let Some(current) = current else {
                auditor.refuse(&draft, "variable_not_set").await;
                println!("{name} was not set in {scope}");
                return Ok(ExitCode::SUCCESS);
            };
            if let Err(error) =
                rules::check_writer(&scope, &name, VarSource::Cli, Some(current.source))
            {
                auditor.refuse(&draft, error.code()).await;
                return Err(error.into());
            }
            let draft = draft.version(current.version);
            allow(&auditor, &draft).await?;
            match store.unset_var(&scope, &name, VarSource::Cli).await {
                Ok(true) => println!("{name} unset in {scope}"),
                Ok(false) => {
                    auditor.fail(&draft, "variable_not_set").await;
                    println!("{name} was not set in {scope}");
                }
                Err(error) => {
                    auditor.fail(&draft, error.code()).await;
                    return Err(error.into());
                }
            }
        }
        EnvCommand::List { scope, json } => {
            let (store, _) = open_store(context, ProviderVars::new()).await?;
            let vars = store.list_vars(&scope).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&vars)?);
            } else if vars.is_empty() {
                println!("no variables in {scope}");
            } else {
                let width = vars.iter().map(|var| var.name.len()).max().unwrap_or(0).max(4);
                println!("{:<width$}  {:>7}  {:<20}  SOURCE", "NAME", "VERSION", "UPDATED (UTC)");
                for var in &vars {
                    println!(
                        "{:<width$}  {:>7}  {:<20}  {}",
                        var.name,
                        var.version,
                        utc(var.updated_at),
                        var.source
                    );
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `keys ...`.
pub async fn run_keys(context: &Context, command: KeysCommand) -> anyhow::Result<ExitCode> {
    let KeysCommand::List { scope, json } = command;
    let (links, _) = provider_vars(context).await?;
    let (store, _) = open_store(context, links.clone()).await?;
    // Re-link rows to the loaded plugins (a plugin may have been added).
    store.set_provider_vars(links).await?;
    let keys = store.list_provider_keys(&scope).await?;
    let is_default = |key: &ProviderKey| {
        default_key(&keys, &key.provider).is_some_and(|default| default.env_var == key.env_var)
    };
    if json {
        let rows: Vec<_> = keys
            .iter()
            .map(|key| serde_json::json!({ "key": key, "scope_default": is_default(key) }))
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    if keys.is_empty() {
        println!("no provider keys in {scope}");
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<18} {:<28} {:>7} {:<20} {:<8} {:<18} {:<20} LAST USED",
        "PROVIDER", "KEY (VARIABLE)", "VARIANT", "LABEL", "STATUS", "HEALTH", "CHECKED (UTC)"
    );
    for key in &keys {
        let marker = if is_default(key) { "*" } else { " " };
        let (health, checked) = match &key.health {
            Some(record) => (record.verdict.to_string(), utc(record.checked_at)),
            None => ("unchecked".to_owned(), "-".to_owned()),
        };
        println!(
            "{:<18} {:<28} {:>7} {:<20} {:<8} {:<18} {:<20} {}",
            key.provider,
            format!("{}{marker}", key.env_var),
            key.variant,
            key.label,
            key.status.to_string(),
            health,
            checked,
            key.last_used_at.map_or_else(|| "never".to_owned(), utc)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `rewrap`.
pub async fn run_rewrap(context: &Context, _args: RewrapArgs) -> anyhow::Result<ExitCode> {
    let (store, current) = open_store(context, ProviderVars::new()).await?;
    eprintln!("re-encrypting every value under ENCRYPTION_KEY (key id {current})");
    let report = store
        .rewrap(&mut |progress| {
            eprintln!(
                "rewrap: {}/{} looked at, {} re-encrypted, {} already current, {} failed",
                progress.done,
                progress.total,
                progress.rewrapped,
                progress.skipped,
                progress.failed
            );
        })
        .await?;
    for failure in &report.failures {
        eprintln!(
            "cannot rewrap {} version {} in {}: {}",
            failure.name, failure.version, failure.scope, failure.error
        );
    }
    let usage = store.key_usage().await?;
    for (id, count) in &usage {
        let role = if *id == current { " (current)" } else { "" };
        println!("key id {id}{role}: {count} value(s)");
    }
    if !report.failures.is_empty() {
        anyhow::bail!(
            "{} value(s) could not be decrypted: set ENCRYPTION_KEY_PREVIOUS to the key they were written with and run `rewrap` again",
            report.failures.len()
        );
    }
    if usage.keys().all(|id| *id == current) {
        println!("every value is under the current key: ENCRYPTION_KEY_PREVIOUS can be removed");
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs the crash-test writer: writes numbered values and prints each number
/// once its write is acknowledged (after `flush`).
pub fn run_torture(args: TortureArgs) -> anyhow::Result<ExitCode> {
    let keyring = Keyring::from_env()?;
    let options = StoreOptions {
        provider_vars: ProviderVars::new().with("OPENAI_API_KEY", "openai"),
        ..StoreOptions::default()
    };
    let store = SledStore::open(&args.dir, keyring, options)?;
    let scope: Scope = TORTURE_SCOPE.parse()?;
    let mut stdout = std::io::stdout().lock();
    let mut written = 0;
    while args.count.is_none_or(|count| written < count) {
        written += 1;
        let name = format!("{}_{written}", args.prefix);
        let value = SecretString::from(format!("value-{}-{written}", args.prefix));
        store.set_var(&scope, &name, &value, VarSource::Api)?;
        store.set_var(&scope, "COUNTER", &value, VarSource::Api)?;
        if written % 3 == 0 {
            // Churn provider-key rows: they must follow their variables.
            let variant = format!("OPENAI_API_KEY_{}", 2 + written % 4);
            if written % 2 == 0 {
                store.set_var(&scope, &variant, &value, VarSource::Api)?;
            } else {
                store.unset_var(&scope, &variant, VarSource::Api)?;
            }
        }
        writeln!(stdout, "{written}")?;
        stdout.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Appends batches of 1 to 7 records (every third one durable) until
/// killed, printing the number of the last record of each batch once its
/// append returned. Record `n` of run `r` has the id `{r:08x}{n:08x}`, the
/// scope `torture/audit/{n % 3}`.
pub async fn run_audit_torture(args: AuditTortureArgs) -> anyhow::Result<ExitCode> {
    use platos_host::store::{
        AuditActor, AuditRecord, AuditTrail, FileAudit, SegmentLimits, audit::ActorKind,
    };
    let limits =
        SegmentLimits { segment_bytes: args.segment_bytes, block_bytes: args.segment_bytes / 8 };
    let trail = FileAudit::open_with_limits(&args.dir, limits)?;
    let mut stdout = std::io::stdout().lock();
    let mut next: u32 = 0;
    for batch in 0u32.. {
        let records: Vec<AuditRecord> = (0..1 + batch % 7)
            .map(|_| {
                next += 1;
                let actor = AuditActor::of_kind(ActorKind::Cli);
                let id = format!("{:08x}{next:08x}", args.run);
                AuditRecord {
                    scope: Some(format!("torture/audit/{}", next % 3)),
                    ..AuditRecord::new(
                        AuditAction::Resolve,
                        actor,
                        id,
                        platos_host::store::now_millis(),
                    )
                }
            })
            .collect();
        trail.append(&records, batch % 3 == 0).await?;
        writeln!(stdout, "{next}")?;
        stdout.flush()?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The value on stdin, without one trailing newline.
fn read_value(scope: &Scope, name: &str) -> anyhow::Result<SecretString> {
    let mut stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!("Type the value of {name}, then Enter and Ctrl-D (the input is not hidden):");
    }
    // Room for the largest value plus a newline, so the buffer never grows
    // (a reallocation would leave a copy behind).
    let mut raw = Zeroizing::new(Vec::with_capacity(MAX_VALUE_LEN + 3));
    (&mut stdin)
        .take(MAX_VALUE_LEN as u64 + 3)
        .read_to_end(&mut raw)
        .context("cannot read the value from stdin")?;
    let text =
        std::str::from_utf8(&raw).map_err(|_| anyhow::anyhow!("the value is not UTF-8 text"))?;
    let text = text.strip_suffix('\n').map_or(text, |text| text.strip_suffix('\r').unwrap_or(text));
    if text.is_empty() {
        anyhow::bail!(
            "no value on stdin: pipe it in, e.g. `printf %s \"$VALUE\" | platos-host env set {scope} {name}`"
        );
    }
    Ok(SecretString::from(text.to_owned()))
}

/// Warns (on stderr) when `name` is no loaded provider's variable but looks
/// like one (`OPENAI_KEY` for `OPENAI_API_KEY`).
fn warn_unknown_name(name: &str, known: &[String]) {
    if known.iter().any(|base| variant_of(name, base).is_some()) {
        return;
    }
    let known: Vec<&str> = known.iter().map(String::as_str).collect();
    if let Some(suggestion) = near_misses(name, &known).first() {
        eprintln!(
            "warning: {name} is not a variable of any loaded provider; did you mean {suggestion}?"
        );
    }
}

/// `2026-11-26T15:30:01Z` for a time in milliseconds since the epoch.
fn utc(millis: UnixMillis) -> String {
    let secs = millis / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3_600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn formats_utc_times() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_764_171_001_999), "2025-11-26T15:30:01Z");
        assert_eq!(utc(4_102_444_799_000), "2099-12-31T23:59:59Z");
    }
}

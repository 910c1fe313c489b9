//! `platos-host store copy`: a whole store copied to another backend, its
//! values still sealed ([`platos_host::store::copy`]), and its API tokens'
//! rows (digests, never tokens) and its audit trail with it.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use platos_host::api::bootstrap::OPERATOR_TOKEN_FILE;
use platos_host::store::{
    CopyError, ProviderVars, STORE_DIR, StoreBackend, copy_audit, copy_store,
};

use super::Context;
use super::env::open_backend;

/// `platos-host store ...`
#[derive(Subcommand)]
pub enum StoreCommand {
    /// Copy everything a store holds into an empty one (values stay sealed:
    /// both open under the same ENCRYPTION_KEY), then check the copy.
    Copy(CopyArgs),
}

/// `platos-host store copy`
#[derive(Args)]
pub struct CopyArgs {
    /// The store to copy: `sled` (the data directory's) or
    /// postgres://USER@HOST:PORT/DATABASE (a password only through
    /// PLATOS_STORE_FROM, never on the command line).
    // A String, parsed in `run`: clap's error would echo the value, password and all.
    #[arg(long, env = "PLATOS_STORE_FROM", value_name = "STORE", hide_env_values = true)]
    from: String,
    /// The empty store to copy into, as --from; default: --store (PLATOS_STORE).
    #[arg(long, env = "PLATOS_STORE_TO", value_name = "STORE", hide_env_values = true)]
    to: Option<String>,
}

/// Runs `store ...`.
pub async fn run(context: &Context, command: StoreCommand) -> anyhow::Result<ExitCode> {
    let StoreCommand::Copy(args) = command;
    if let Some(arg) = password_on_argv(std::env::args().skip(1)) {
        eprintln!(
            "error: {arg} holds a PostgreSQL password on the command line, where other users can see it; expected the URL without its password there, or the whole URL in PLATOS_STORE_FROM, PLATOS_STORE_TO or PLATOS_STORE"
        );
        return Ok(ExitCode::from(2));
    }
    let from = match args.from.parse::<StoreBackend>() {
        Ok(from) => from,
        Err(error) => {
            eprintln!("error: --from (or PLATOS_STORE_FROM): {error}");
            return Ok(ExitCode::from(2));
        }
    };
    let to = match args.to.as_deref().map(str::parse::<StoreBackend>) {
        None => context.store.clone(),
        Some(Ok(to)) => to,
        Some(Err(error)) => {
            eprintln!("error: --to (or PLATOS_STORE_TO): {error}");
            return Ok(ExitCode::from(2));
        }
    };
    let (from_name, to_name) = (describe(context, &from), describe(context, &to));
    if from_name == to_name {
        return Err(CopyError::SameStore(from_name).into());
    }
    if from == StoreBackend::Sled && !context.data_dir.join(STORE_DIR).is_dir() {
        anyhow::bail!(
            "no_source_store: there is no sled store in {}; expected the data directory of the store to copy (--data-dir or PLATOS_DATA_DIR)",
            context.data_dir.join(STORE_DIR).display()
        );
    }
    let (source, _) = open_backend(context, &from, ProviderVars::new())
        .await
        .map_err(|error| error.context(format!("cannot open the source, {from_name}")))?;
    let (destination, _) = open_backend(context, &to, ProviderVars::new())
        .await
        .map_err(|error| error.context(format!("cannot open the destination, {to_name}")))?;
    eprintln!("copying {from_name} into {to_name}, values still sealed");
    let counts = copy_store(source.as_ref(), destination.as_ref(), &to_name).await?;
    println!("copied: {counts}; verified");
    let source_tokens = from.open_tokens(&context.data_dir).await?;
    let rows = source_tokens.list().await?;
    drop(source_tokens);
    let added = to.open_tokens(&context.data_dir).await?.import(&rows).await?;
    println!(
        "copied: {added} API tokens ({} already there), digests only: every token of {from_name} works with {to_name}; the file {} stays where it is",
        rows.len() - added,
        context.data_dir.join(OPERATOR_TOKEN_FILE).display()
    );
    let (source_audit, destination_audit) =
        (from.open_audit(&context.data_dir).await?, to.open_audit(&context.data_dir).await?);
    let records = copy_audit(source_audit.as_ref(), destination_audit.as_ref()).await?;
    println!("copied: {records} audit records");
    Ok(ExitCode::SUCCESS)
}

/// `the sled store in DIR/store` or the PostgreSQL location (never a password).
fn describe(context: &Context, backend: &StoreBackend) -> String {
    match backend {
        StoreBackend::Sled => {
            format!("the sled store in {}", context.data_dir.join(STORE_DIR).display())
        }
        StoreBackend::Postgres(_) => backend.to_string(),
    }
}

/// The first argument (`--from URL`'s URL or `--from=URL`) that is a
/// PostgreSQL URL with a password, shown without it.
fn password_on_argv(args: impl Iterator<Item = String>) -> Option<String> {
    args.filter_map(|arg| {
        let value = arg
            .split_once('=')
            .filter(|(flag, _)| flag.starts_with("--"))
            .map_or(arg.as_str(), |(_, value)| value);
        value.parse::<StoreBackend>().ok().filter(StoreBackend::has_password)
    })
    .map(|backend| backend.to_string())
    .next()
}

#[cfg(test)]
mod tests {
    use super::password_on_argv;

    #[test]
    fn a_password_on_the_command_line_is_found_and_never_shown() {
        let args = |list: &[&str]| list.iter().map(|arg| (*arg).to_owned()).collect::<Vec<_>>();
        let found = password_on_argv(
            args(&["store", "copy", "--from", "sled", "--to=postgres://u:pw-canary@h:5/d"])
                .into_iter(),
        )
        .unwrap();
        assert_eq!(found, "postgres://u@h:5/d");
        let found =
            password_on_argv(args(&["--from", "postgres://u:pw-canary@h/d"]).into_iter()).unwrap();
        assert!(!found.contains("pw-canary"), "{found}");
        assert!(
            password_on_argv(args(&["--from", "sled", "--to", "postgres://u@h/d"]).into_iter())
                .is_none()
        );
    }
}

//! `platos-host token create | list | revoke`: operator, admin and agent
//! tokens.
//!
//! They work on the tokens of `--store` (env `PLATOS_STORE`): with `sled`,
//! the token database under the data directory, which a running server
//! holds (so these commands work while it is stopped; with the server
//! running, use its API: `POST /v1/tokens` with the operator token); with
//! `postgres://…`, the token table every host on that database shares, at
//! any time, without the master key. A created token is printed once, to
//! stdout, and never logged.

use std::process::ExitCode;

use clap::Subcommand;
use platos_host::api::audit::token_draft;
use platos_host::api::auth::{Grant, Pins, PreparedToken, TokenKind, TokenStore};
use platos_host::audit::{AuditDraft, cli_actor};
use platos_host::scope::Scope;
use platos_host::store::AuditAction;
use platos_host::store::tokens::Revoked;
use secrecy::ExposeSecret;

use super::Context;

/// `platos-host token ...`
#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it once on stdout: an operator token (every
    /// scope), or a token bound to one scope: an agent token (read and
    /// resolve) or, with --admin, an admin token (also set variables and
    /// change or probe keys).
    Create {
        /// An operator token.
        #[arg(long, conflicts_with = "scope", required_unless_present = "scope")]
        operator: bool,
        /// A token bound to this scope (an agent token unless --admin).
        #[arg(long, value_name = "ORG/PROJECT/ENV")]
        scope: Option<Scope>,
        /// An admin token of the --scope: it may also change the scope.
        #[arg(long, requires = "scope")]
        admin: bool,
        /// A name for people.
        #[arg(long)]
        label: Option<String>,
        /// A default pin of an agent or admin token, PROVIDER=KEY_ID (e.g.
        /// openai=OPENAI_API_KEY_2): a resolve with the token whose request
        /// names no pin spends this key. Repeat for more providers.
        #[arg(long = "pin", value_name = "PROVIDER=KEY_ID", conflicts_with = "operator")]
        pins: Vec<String>,
    },
    /// List tokens (ids, kinds, what they may do, scopes, labels; never the
    /// tokens).
    List {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id.
    Revoke {
        /// The token's id (from `token list`).
        id: String,
    },
}

/// Why the last operator token stays.
macro_rules! last_operator {
    () => {
        "{id} is the last operator token: create another with `platos-host token create --operator` first, then revoke this one"
    };
}

/// Runs `token ...`.
pub async fn run(context: &Context, command: TokenCommand) -> anyhow::Result<ExitCode> {
    let tokens = TokenStore::new(context.store.open_tokens(&context.data_dir).await?);
    match command {
        TokenCommand::Create { operator, scope, admin, label, pins } => {
            let kind = match (operator, admin) {
                (true, _) => TokenKind::Operator,
                (false, true) => TokenKind::Admin,
                (false, false) => TokenKind::Agent,
            };
            let grant = Grant::new(kind, scope).ok_or_else(|| {
                anyhow::anyhow!(
                    "pass --operator, or --scope org/project/env (with --admin for an admin token)"
                )
            })?;
            let label = label.unwrap_or_else(|| grant.default_label());
            let auditor = context.auditor().await?;
            let draft = AuditDraft::new(AuditAction::TokenCreate, cli_actor());
            let prepared = match PreparedToken::new(&grant, &label, parse_pins(&pins)?) {
                Ok(prepared) => prepared,
                Err(error) => {
                    auditor.refuse(&draft, error.code()).await;
                    return Err(error.into());
                }
            };
            let draft = token_draft(draft, &prepared.info());
            super::env::allow(&auditor, &draft).await?;
            let issued = match tokens.insert(prepared).await {
                Ok(issued) => issued,
                Err(error) => {
                    auditor.fail(&draft, error.code()).await;
                    return Err(error.into());
                }
            };
            let kind = match grant.scope() {
                None => "an operator token".to_owned(),
                Some(scope) => format!("an {} token for {scope}", grant.kind().name()),
            };
            eprintln!(
                "created {kind}, id {} ({}); it is printed once, on stdout:",
                issued.info.id, issued.info.label
            );
            println!("{}", issued.token.expose_secret());
        }
        TokenCommand::List { json } => {
            let list = tokens.list().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("no tokens");
            } else {
                println!("{:<14} {:<9} {:<22} {:<40} LABEL", "ID", "KIND", "MAY", "SCOPE");
                for token in &list {
                    println!(
                        "{:<14} {:<9} {:<22} {:<40} {}",
                        token.id,
                        token.kind.name(),
                        rights(token.kind),
                        token.scope.as_deref().unwrap_or("(every scope)"),
                        token.label
                    );
                    if !token.pins.is_empty() {
                        let pins: Vec<String> = token
                            .pins
                            .iter()
                            .map(|(provider, key)| format!("{provider}={key}"))
                            .collect();
                        println!("{:<14} pins: {}", "", pins.join(", "));
                    }
                }
            }
        }
        TokenCommand::Revoke { id } => {
            let auditor = context.auditor().await?;
            let draft = AuditDraft::new(AuditAction::TokenRevoke, cli_actor()).subject(&id);
            let info = match tokens.revocable(&id).await? {
                Ok(info) => info,
                Err(Revoked::LastOperator) => {
                    auditor.refuse(&draft, "last_operator_token").await;
                    anyhow::bail!(last_operator!(), id = id);
                }
                Err(_) => {
                    auditor.refuse(&draft, "token_not_found").await;
                    anyhow::bail!("no token has the id {id:?}: `platos-host token list` shows them")
                }
            };
            let draft = token_draft(draft, &info);
            super::env::allow(&auditor, &draft).await?;
            let revoked = tokens.revoke(&id).await;
            let code = match &revoked {
                Ok(Revoked::Revoked) => None,
                Ok(Revoked::NotFound) => Some("token_not_found"),
                Ok(Revoked::LastOperator) => Some("last_operator_token"),
                Err(error) => Some(error.code()),
            };
            if let Some(code) = code {
                auditor.fail(&draft, code).await;
            }
            match revoked? {
                Revoked::Revoked => println!("revoked token {id}"),
                Revoked::NotFound => {
                    anyhow::bail!("no token has the id {id:?}: it was revoked meanwhile")
                }
                Revoked::LastOperator => anyhow::bail!(last_operator!(), id = id),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The `--pin PROVIDER=KEY_ID` arguments as pins (each checked by the
/// token store); a provider named twice is refused. An argument without
/// `=` is not repeated in the error, in case it is a pasted key.
fn parse_pins(arguments: &[String]) -> anyhow::Result<Pins> {
    let mut pins = Pins::new();
    for argument in arguments {
        let Some((provider, key)) = argument.split_once('=') else {
            anyhow::bail!(
                "--pin expects PROVIDER=KEY_ID, e.g. --pin openai=OPENAI_API_KEY_2 (the argument given is not repeated, in case it is a key)"
            );
        };
        if pins.insert(provider.to_owned(), key.to_owned()).is_some() {
            anyhow::bail!("--pin names the provider {provider:?} twice: one pin per provider");
        }
    }
    Ok(pins)
}

/// What a token of `kind` may do, for `token list`.
fn rights(kind: TokenKind) -> &'static str {
    match kind {
        TokenKind::Operator => "everything, tokens",
        TokenKind::Admin => "read, resolve, change",
        TokenKind::Agent => "read, resolve",
    }
}

//! The self-host import: variables from a `.env` file and the process
//! environment, written into one configured scope at start and on reload.
//!
//! Precedence (see `docs/store.md`):
//!
//! 1. Between the two sources, the process environment wins over the `.env`
//!    file (as with Docker Compose and dotenv: the file supplies defaults).
//! 2. In the self-host scope, self-host values win over API-set values of
//!    the same name: the import overwrites them and marks them `self-host`,
//!    and an API write or unset of a self-host variable is refused with a
//!    message saying where to change it.
//! 3. A self-host variable that disappears from both sources is unset on the
//!    next reload.
//!
//! The `.env` file is imported whole, minus the names of the host's own
//! environment ([`is_host_reserved`]: the master keys, `PATH`, `LD_*`,
//! `PLATOS_*` host settings, ...) except the scope settings the host reads
//! from the scope ([`SCOPE_SETTINGS`]). From the process environment only
//! the names a filter accepts are imported — the host accepts the variables
//! its loaded provider plugins own and their numbered variants
//! ([`manifest_var_filter`]) — and never a host-reserved name, so `PATH` or
//! `HOME` never end up in the store, whatever a plugin declares. The log line
//! of each import names the variables taken from the process environment.
//!
//! Nothing here logs or returns a value: problems are reported by line
//! number.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::embedding::EMBEDDING_PROVIDER_VAR;
use crate::policy::hints::near_misses;
use crate::policy::names::is_valid_env_var_name;
use crate::policy::ownership::is_host_reserved;
use crate::provider::Manifest;
use crate::scope::Scope;
use crate::store::{ImportReport, RESERVED_NAMES, SecretStore, StoreError, UnixMillis, variant_of};

/// Host-reserved names that are nevertheless scope settings, read from the
/// scope by the host itself: a `.env` file may set them.
pub const SCOPE_SETTINGS: &[&str] = &[EMBEDDING_PROVIDER_VAR];

/// Whether a `.env` name is imported: not the host's own environment
/// (unless a scope setting).
fn importable_from_file(name: &str) -> bool {
    SCOPE_SETTINGS.contains(&name) || !(is_host_reserved(name) || RESERVED_NAMES.contains(&name))
}

/// Where the self-host variables come from and where they go.
#[derive(Debug, Clone)]
pub struct SelfHostConfig {
    /// The scope they are imported into.
    pub scope: Scope,
    /// The `.env` file, if any. A configured file that cannot be read fails
    /// the import (nothing is changed), so a missing file never unsets keys.
    pub env_file: Option<PathBuf>,
    /// Whether to import from the process environment.
    pub process_env: bool,
}

/// A line of a `.env` file that was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineProblem {
    /// 1-based.
    pub line: usize,
    /// Why, without the line's content.
    pub reason: &'static str,
}

/// Why a `.env` file was refused. Never carries a value.
#[derive(Debug, thiserror::Error)]
pub enum SelfHostError {
    /// The file could not be read.
    #[error("cannot read the .env file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line is malformed.
    #[error("{path}:{line}: {reason}")]
    Syntax {
        /// The file.
        path: PathBuf,
        /// 1-based.
        line: usize,
        /// What is wrong, without the line's content.
        reason: &'static str,
    },
    /// The store refused the import.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The variables of a `.env` file, and the lines skipped.
#[derive(Debug, Default)]
pub struct Dotenv {
    /// Names and values, in file order; a later line wins over an earlier one
    /// when imported.
    pub vars: Vec<(String, SecretString)>,
    /// Lines skipped: names that break the variable-name rule, or reserved.
    pub skipped: Vec<LineProblem>,
}

/// What a reload read and changed.
#[derive(Debug, Default)]
pub struct Reload {
    /// What the store changed.
    pub report: ImportReport,
    /// `.env` lines not imported.
    pub skipped: Vec<LineProblem>,
    /// The names taken from the process environment, sorted.
    pub from_process: Vec<String>,
    /// `.env` names whose value the process environment replaced, sorted.
    pub shadowed: Vec<String>,
}

/// The self-host variables [`collect`] gathered.
#[derive(Debug, Default)]
pub struct Collected {
    /// Names and values, sorted by name.
    pub vars: Vec<(String, SecretString)>,
    /// `.env` lines not imported.
    pub skipped: Vec<LineProblem>,
    /// The names taken from the process environment, sorted.
    pub from_process: Vec<String>,
    /// `.env` names whose value the process environment replaced, sorted.
    pub shadowed: Vec<String>,
}

/// Parses `.env` text: `NAME=VALUE` lines, an optional `export ` prefix,
/// blank lines and `#` comment lines, values optionally in single quotes
/// (literal) or double quotes (with `\n`, `\r`, `\t`, `\"` and `\\` escapes);
/// an unquoted value ends at ` #` (an inline comment) and is trimmed.
///
/// A line without `=`, or with an unterminated quote, is an error (the
/// whole file is refused). A name that breaks the variable-name rule, or a
/// reserved name, is skipped and reported.
pub fn parse_dotenv(text: &str) -> Result<Dotenv, LineProblem> {
    let mut dotenv = Dotenv::default();
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let statement = trimmed.strip_prefix("export ").map_or(trimmed, str::trim_start);
        let Some((name, value)) = statement.split_once('=') else {
            return Err(LineProblem { line, reason: "expected NAME=VALUE" });
        };
        let name = name.trim_end();
        let value =
            parse_value(value.trim_start()).map_err(|reason| LineProblem { line, reason })?;
        if !is_valid_env_var_name(name) {
            dotenv.skipped.push(LineProblem {
                line,
                reason: "the name is not an uppercase variable name ([A-Z][A-Z0-9_]*)",
            });
        } else if RESERVED_NAMES.contains(&name) {
            dotenv.skipped.push(LineProblem { line, reason: "the master key is not imported" });
        } else if !importable_from_file(name) {
            dotenv.skipped.push(LineProblem {
                line,
                reason: "a name of the host's own environment (PATH, LD_*, PLATOS_* settings, ...) is not imported",
            });
        } else {
            dotenv.vars.push((name.to_owned(), SecretString::from(value.to_string())));
        }
    }
    Ok(dotenv)
}

/// The value part of a line (after `=`, leading blanks removed).
fn parse_value(text: &str) -> Result<Zeroizing<String>, &'static str> {
    let mut value = Zeroizing::new(String::new());
    if let Some(rest) = text.strip_prefix('\'') {
        let end = rest.find('\'').ok_or("unterminated single quote")?;
        check_after_quote(&rest[end + 1..])?;
        value.push_str(&rest[..end]);
    } else if let Some(rest) = text.strip_prefix('"') {
        let mut chars = rest.char_indices();
        let mut closed = None;
        while let Some((at, c)) = chars.next() {
            match c {
                '"' => {
                    closed = Some(at);
                    break;
                }
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, 'r')) => value.push('\r'),
                    Some((_, 't')) => value.push('\t'),
                    Some((_, other @ ('"' | '\\' | '$'))) => value.push(other),
                    Some((_, other)) => {
                        value.push('\\');
                        value.push(other);
                    }
                    None => return Err("unterminated double quote"),
                },
                other => value.push(other),
            }
        }
        let end = closed.ok_or("unterminated double quote")?;
        check_after_quote(&rest[end + 1..])?;
    } else {
        let end = text
            .char_indices()
            .find(|(at, c)| *c == '#' && text[..*at].ends_with([' ', '\t']))
            .map_or(text.len(), |(at, _)| at);
        value.push_str(text[..end].trim_end());
    }
    Ok(value)
}

/// After a closing quote only blanks and a comment may follow.
fn check_after_quote(rest: &str) -> Result<(), &'static str> {
    let rest = rest.trim_start();
    if rest.is_empty() || rest.starts_with('#') {
        Ok(())
    } else {
        Err("unexpected text after the closing quote")
    }
}

/// Reads and parses a `.env` file.
pub fn read_dotenv(path: &Path) -> Result<Dotenv, SelfHostError> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|source| SelfHostError::Read { path: path.to_owned(), source })?,
    );
    parse_dotenv(&text).map_err(|problem| SelfHostError::Syntax {
        path: path.to_owned(),
        line: problem.line,
        reason: problem.reason,
    })
}

/// A filter accepting every variable the manifests declare and the
/// numbered variants of their names (`OPENAI_API_KEY_2`, …).
pub fn manifest_var_filter<'a>(
    manifests: impl IntoIterator<Item = &'a Manifest>,
) -> Box<dyn Fn(&str) -> bool + Send + Sync> {
    let names: Vec<String> = manifests
        .into_iter()
        .flat_map(|manifest| manifest.env_vars.iter().map(|var| var.name.clone()))
        .collect();
    Box::new(move |name: &str| names.iter().any(|base| variant_of(name, base).is_some()))
}

/// The self-host variables: the `.env` file's, then the accepted process
/// variables over them (the process environment wins). A process variable
/// is taken only when `accept` takes it and it is not host-reserved.
pub fn collect(
    dotenv: Option<Dotenv>,
    process_env: impl IntoIterator<Item = (OsString, OsString)>,
    accept: &dyn Fn(&str) -> bool,
) -> Collected {
    let mut vars: BTreeMap<String, SecretString> = BTreeMap::new();
    let mut skipped = Vec::new();
    if let Some(dotenv) = dotenv {
        vars.extend(dotenv.vars);
        skipped = dotenv.skipped;
    }
    let from_file: std::collections::BTreeSet<String> = vars.keys().cloned().collect();
    let mut from_process = Vec::new();
    for (name, value) in process_env {
        let (Ok(name), Ok(value)) = (name.into_string(), value.into_string()) else { continue };
        let value = Zeroizing::new(value);
        if is_valid_env_var_name(&name)
            && !RESERVED_NAMES.contains(&name.as_str())
            && !is_host_reserved(&name)
            && accept(&name)
        {
            vars.insert(name.clone(), SecretString::from(value.as_str().to_owned()));
            from_process.push(name);
        }
    }
    from_process.sort();
    from_process.dedup();
    let shadowed = from_process.iter().filter(|name| from_file.contains(*name)).cloned().collect();
    Collected { vars: vars.into_iter().collect(), skipped, from_process, shadowed }
}

/// Imports the self-host variables into `config.scope`: call it at start
/// and on every reload (SIGHUP, file change). The whole import is one
/// atomic change; a read error or a malformed `.env` line changes nothing.
pub async fn reload(
    store: &dyn SecretStore,
    config: &SelfHostConfig,
    accept: &(dyn Fn(&str) -> bool + Sync),
) -> Result<Reload, SelfHostError> {
    let dotenv = config.env_file.as_deref().map(read_dotenv).transpose()?;
    let process: Vec<(OsString, OsString)> =
        if config.process_env { std::env::vars_os().collect() } else { Vec::new() };
    let Collected { vars, skipped, from_process, shadowed } = collect(dotenv, process, accept);
    for problem in &skipped {
        tracing::warn!(
            line = problem.line,
            reason = problem.reason,
            "a .env line was not imported"
        );
    }
    let report = store.import_self_host(&config.scope, &vars).await?;
    Ok(Reload { report, skipped, from_process, shadowed })
}

/// The last self-host import as the page and the API show it. Never holds a
/// value: names, line numbers and reasons only.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ImportStatus {
    /// The scope imported into.
    pub scope: String,
    /// When the last import was tried, Unix milliseconds.
    pub attempted_at: UnixMillis,
    /// Why it was refused (nothing changed then); `None` when it succeeded.
    pub error: Option<String>,
    /// The variables the last successful import holds, sorted.
    pub variables: Vec<String>,
    /// `.env` lines it skipped, with the reason.
    pub skipped_lines: Vec<SkippedLine>,
    /// Names taken from the process environment.
    pub from_process_env: Vec<String>,
    /// `.env` names whose value a process variable replaced.
    pub shadowed_by_process_env: Vec<String>,
    /// Imported names that look like misspellings of a provider's variable.
    pub near_misses: Vec<ImportHint>,
}

/// A `.env` line not imported.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SkippedLine {
    /// 1-based.
    pub line: usize,
    /// Why.
    pub reason: &'static str,
}

/// An imported name that is probably a misspelling.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ImportHint {
    /// The name in the configuration.
    pub found: String,
    /// The provider variable it is closest to.
    pub did_you_mean: String,
}

impl ImportStatus {
    /// The status after a successful `reload` into `scope`; `known` are the
    /// loaded providers' variable names, for the misspelling hints.
    pub fn succeeded(scope: &Scope, reload: &Reload, known: &[&str], at: UnixMillis) -> Self {
        let report = &reload.report;
        let mut variables: Vec<String> =
            report.set.iter().chain(&report.unchanged).cloned().collect();
        variables.sort();
        let near_misses = variables
            .iter()
            .filter(|name| !known.iter().any(|base| variant_of(name, base).is_some()))
            .filter_map(|name| {
                let best = *near_misses(name, known).first()?;
                Some(ImportHint { found: name.clone(), did_you_mean: best.to_owned() })
            })
            .collect();
        ImportStatus {
            scope: scope.to_string(),
            attempted_at: at,
            error: None,
            variables,
            skipped_lines: reload
                .skipped
                .iter()
                .map(|problem| SkippedLine { line: problem.line, reason: problem.reason })
                .collect(),
            from_process_env: reload.from_process.clone(),
            shadowed_by_process_env: reload.shadowed.clone(),
            near_misses,
        }
    }

    /// This status after a refused reload: the previous variables stay, the
    /// error says why.
    pub fn refused(mut self, scope: &Scope, error: String, at: UnixMillis) -> Self {
        self.scope = scope.to_string();
        self.attempted_at = at;
        self.error = Some(error);
        self
    }
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn values(dotenv: &Dotenv) -> Vec<(&str, &str)> {
        dotenv.vars.iter().map(|(name, value)| (name.as_str(), value.expose_secret())).collect()
    }

    #[test]
    fn parses_dotenv() {
        let text = r#"
# LLM providers
ANTHROPIC_API_KEY=sk-ant-123
export OPENAI_API_KEY = "sk-abc#not-a-comment"  # a comment
OPENAI_API_KEY_2='sk-single \n literal'
PLATOS_EMBEDDING_PROVIDER=voyage # or `openai`
VOYAGE_API_KEY=pa-x#y
EMPTY=
QUOTED_EMPTY=""
ESCAPES="a\nb\t\"c\"\\d"
   INDENTED=  spaced value  
"#;
        let dotenv = parse_dotenv(text).unwrap();
        assert_eq!(
            values(&dotenv),
            [
                ("ANTHROPIC_API_KEY", "sk-ant-123"),
                ("OPENAI_API_KEY", "sk-abc#not-a-comment"),
                ("OPENAI_API_KEY_2", "sk-single \\n literal"),
                ("PLATOS_EMBEDDING_PROVIDER", "voyage"),
                ("VOYAGE_API_KEY", "pa-x#y"),
                ("EMPTY", ""),
                ("QUOTED_EMPTY", ""),
                ("ESCAPES", "a\nb\t\"c\"\\d"),
                ("INDENTED", "spaced value"),
            ]
        );
        assert!(dotenv.skipped.is_empty());
    }

    #[test]
    fn skips_bad_names_without_echoing_them() {
        let dotenv =
            parse_dotenv("node_env=dev\nOK=1\nsk-live-123=x\nENCRYPTION_KEY=abc\n").unwrap();
        assert_eq!(values(&dotenv), [("OK", "1")]);
        let lines: Vec<usize> = dotenv.skipped.iter().map(|problem| problem.line).collect();
        assert_eq!(lines, [1, 3, 4]);
        for problem in &dotenv.skipped {
            assert!(!problem.reason.contains("sk-live") && !problem.reason.contains("abc"));
        }
    }

    #[test]
    fn host_names_in_the_file_are_skipped_but_scope_settings_are_not() {
        let dotenv = parse_dotenv(
            "PATH=/tmp/evil\nLD_PRELOAD=/tmp/x.so\nPLATOS_LISTEN=0.0.0.0:1\nPLATOS_EMBEDDING_PROVIDER=openai\nACME_KEY=k\n",
        )
        .unwrap();
        let names: Vec<&str> = dotenv.vars.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["PLATOS_EMBEDDING_PROVIDER", "ACME_KEY"]);
        let lines: Vec<usize> = dotenv.skipped.iter().map(|problem| problem.line).collect();
        assert_eq!(lines, [1, 2, 3]);
    }

    #[test]
    fn refuses_malformed_lines() {
        for (text, line, reason) in [
            ("OK=1\nsk-pasted-secret-without-equals\n", 2, "expected NAME=VALUE"),
            ("A=\"unterminated", 1, "unterminated double quote"),
            ("A='unterminated", 1, "unterminated single quote"),
            ("A=\"x\" trailing", 1, "unexpected text after the closing quote"),
        ] {
            assert_eq!(parse_dotenv(text).unwrap_err(), LineProblem { line, reason }, "{text}");
        }
        let error =
            SelfHostError::Syntax { path: ".env".into(), line: 2, reason: "expected NAME=VALUE" };
        assert_eq!(error.to_string(), ".env:2: expected NAME=VALUE");
    }

    #[test]
    fn process_environment_wins_and_is_filtered() {
        let dotenv = parse_dotenv("OPENAI_API_KEY=from-file\nOTHER=file-only\n").unwrap();
        let process = [
            ("OPENAI_API_KEY", "from-process"),
            ("OPENAI_API_KEY_3", "variant"),
            ("PATH", "/usr/bin"),
            ("ENCRYPTION_KEY", "0123456789abcdef0123456789abcdef"),
            ("lower", "x"),
        ]
        .map(|(name, value)| (OsString::from(name), OsString::from(value)));
        // Even a filter that takes host names (a plugin that declared PATH)
        // never imports them.
        let accept = |name: &str| {
            ["ENCRYPTION_KEY", "PATH"].contains(&name)
                || variant_of(name, "OPENAI_API_KEY").is_some()
        };
        let Collected { vars, skipped, from_process, shadowed } =
            collect(Some(dotenv), process, &accept);
        assert_eq!(from_process, ["OPENAI_API_KEY", "OPENAI_API_KEY_3"]);
        assert_eq!(shadowed, ["OPENAI_API_KEY"], "the .env value the shell replaced");
        let vars: Vec<(&str, &str)> =
            vars.iter().map(|(name, value)| (name.as_str(), value.expose_secret())).collect();
        assert_eq!(
            vars,
            [
                ("OPENAI_API_KEY", "from-process"),
                ("OPENAI_API_KEY_3", "variant"),
                ("OTHER", "file-only")
            ]
        );
        assert!(skipped.is_empty());
    }

    #[test]
    fn the_import_status_names_misspellings_and_never_values() {
        let reload = Reload {
            report: ImportReport {
                set: vec!["OPENAI_KEY".into(), "ANTHROPIC_API_KEY_2".into()],
                unchanged: vec!["VOYAGE_API_KEY".into()],
                removed: vec![],
            },
            skipped: vec![LineProblem { line: 4, reason: "reserved name" }],
            from_process: vec!["VOYAGE_API_KEY".into()],
            shadowed: vec!["VOYAGE_API_KEY".into()],
        };
        let scope: Scope = "self/host/prod".parse().unwrap();
        let known = ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "VOYAGE_API_KEY"];
        let status = ImportStatus::succeeded(&scope, &reload, &known, 7);
        assert_eq!(status.variables, ["ANTHROPIC_API_KEY_2", "OPENAI_KEY", "VOYAGE_API_KEY"]);
        let hints: Vec<(&str, &str)> = status
            .near_misses
            .iter()
            .map(|hint| (hint.found.as_str(), hint.did_you_mean.as_str()))
            .collect();
        assert_eq!(hints, [("OPENAI_KEY", "OPENAI_API_KEY")], "variants are never misspellings");
        assert_eq!(status.skipped_lines[0].line, 4);
        let refused = status.refused(&scope, ".env:8: expected NAME=VALUE".into(), 9);
        assert_eq!(refused.error.as_deref(), Some(".env:8: expected NAME=VALUE"));
        assert_eq!(refused.variables.len(), 3, "the previous variables stay");
    }

    #[test]
    fn manifest_filter_accepts_declared_names_and_variants() {
        use crate::provider::{AuthShape, EnvVar, EnvVarRole};
        let var = |name: &str, role| EnvVar {
            name: name.into(),
            role,
            required: false,
            description: String::new(),
            default_value: None,
            aliases: Vec::new(),
        };
        let manifest = Manifest {
            slug: "openai".into(),
            display_name: "OpenAI".into(),
            plugin_version: "1".into(),
            env_vars: vec![
                var("OPENAI_API_KEY", EnvVarRole::Secret),
                var("OPENAI_API_BASE", EnvVarRole::BaseUrl),
            ],
            auth: AuthShape::Bearer { env_var: "OPENAI_API_KEY".into() },
            model_classes: Vec::new(),
            default_models: Vec::new(),
            allowed_hosts: Vec::new(),
            docs_url: String::new(),
            probe_cost: None,
            clients: Vec::new(),
            default_client: None,
            token_exchange: false,
        };
        let accept = manifest_var_filter([&manifest]);
        for yes in ["OPENAI_API_KEY", "OPENAI_API_KEY_2", "OPENAI_API_BASE"] {
            assert!(accept(yes), "{yes}");
        }
        for no in ["PATH", "HOME", "OPENAI_KEY", "OPENAI_API_KEY_1"] {
            assert!(!accept(no), "{no}");
        }
    }
}

//! API tokens over both token backends: one suite of cases, each run for
//! the sled token database and for the PostgreSQL token table (the
//! `token_suite!` below: one constructor per backend); then what only the
//! shared table has: two hosts on one table see each other's creates,
//! pins and revokes at once, hosts starting together make one operator
//! token, and a database that cannot be reached is `store_unavailable`.

mod support;

use std::sync::Arc;

use async_trait::async_trait;
use platos_host::api::auth::{Grant, MAX_PINS, Pins, TokenError, TokenKind, TokenStore};
use platos_host::scope::Scope;
use platos_host::store::tokens::Revoked;
use platos_host::store::{PostgresTokens, SledTokens, StoreBackend};
use secrecy::ExposeSecret;

/// Where a case's tokens live; [`Backend::open`] opens them again (a reopen
/// after the case dropped its handle).
#[async_trait]
trait Backend: Send + Sync {
    async fn open(&self) -> TokenStore;
}

struct Sled(tempfile::TempDir);

#[async_trait]
impl Backend for Sled {
    async fn open(&self) -> TokenStore {
        TokenStore::new(Arc::new(SledTokens::open(self.0.path()).unwrap()))
    }
}

struct Postgres(String);

#[async_trait]
impl Backend for Postgres {
    async fn open(&self) -> TokenStore {
        TokenStore::new(Arc::new(PostgresTokens::open(&self.0).await.unwrap()))
    }
}

async fn sled() -> Sled {
    Sled(tempfile::tempdir().unwrap())
}

async fn postgres() -> Postgres {
    Postgres(support::postgres_database().await)
}

/// Each case as a test of each backend.
macro_rules! token_suite {
    ($($case:ident),* $(,)?) => {
        mod on_sled {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(&super::sled().await).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case(&super::postgres().await).await;
                }
            )*
        }
    };
}

token_suite!(
    tokens_verify_bind_and_revoke,
    admin_tokens_administer_their_scope_only,
    pins_are_kept_replaced_and_persisted,
    invalid_pins_are_refused_naming_the_entry_but_never_the_key_id,
    the_first_operator_is_made_once_and_the_last_one_is_kept,
);

fn scope(text: &str) -> Scope {
    text.parse().unwrap()
}

fn pins(entries: &[(&str, &str)]) -> Pins {
    entries.iter().map(|(provider, key)| ((*provider).to_owned(), (*key).to_owned())).collect()
}

async fn tokens_verify_bind_and_revoke(backend: &dyn Backend) {
    let store = backend.open().await;
    let dev = scope("acme/shop/dev");
    let agent = store.create(&Grant::Agent(dev.clone()), "ci", Pins::new()).await.unwrap();
    let operator = store.create(&Grant::Operator, "root", Pins::new()).await.unwrap();
    let text = agent.token.expose_secret();
    assert!(text.starts_with("platos_") && text.len() == 7 + 12 + 1 + 64, "{}", text.len());
    assert!(!format!("{agent:?}").contains(text));
    let caller = store.verify(text).await.unwrap().unwrap();
    assert_eq!(caller.grant, Grant::Agent(dev.clone()));
    assert!(caller.can_access(&dev));
    assert!(!caller.can_administer(&dev), "an agent token reads and resolves only");
    assert!(!caller.can_access(&scope("acme/shop/prod")));
    assert!(store.verify(operator.token.expose_secret()).await.unwrap().unwrap().is_operator());

    // One changed character, a wrong prefix, garbage: refused.
    let mut tampered = text.to_owned();
    tampered.pop();
    tampered.push(if text.ends_with('0') { '1' } else { '0' });
    for bad in [tampered.as_str(), "", "platos_", "platos_zz_zz", &text[1..]] {
        assert!(store.verify(bad).await.unwrap().is_none(), "{bad}");
    }
    assert_eq!(store.revoke(&agent.info.id).await.unwrap(), Revoked::Revoked);
    assert_eq!(store.revoke(&agent.info.id).await.unwrap(), Revoked::NotFound);
    assert!(store.verify(text).await.unwrap().is_none());

    // Persisted: a reopen sees the operator token only.
    let operator_text = operator.token.expose_secret().to_owned();
    drop(store);
    let store = backend.open().await;
    let listed = store.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!((listed[0].kind, listed[0].label.as_str()), (TokenKind::Operator, "root"));
    assert!(store.verify(&operator_text).await.unwrap().is_some());
    assert!(matches!(
        store.create(&Grant::Operator, " ", Pins::new()).await,
        Err(TokenError::InvalidLabel)
    ));
}

async fn admin_tokens_administer_their_scope_only(backend: &dyn Backend) {
    let store = backend.open().await;
    let (dev, prod) = (scope("acme/shop/dev"), scope("acme/shop/prod"));
    let admin = store.create(&Grant::Admin(dev.clone()), "deployer", Pins::new()).await.unwrap();
    assert_eq!(
        (admin.info.kind, admin.info.scope.as_deref()),
        (TokenKind::Admin, Some("acme/shop/dev"))
    );
    let caller = store.verify(admin.token.expose_secret()).await.unwrap().unwrap();
    assert_eq!(caller.grant, Grant::Admin(dev.clone()));
    assert!(caller.can_access(&dev) && caller.can_administer(&dev));
    assert!(!caller.can_access(&prod) && !caller.can_administer(&prod));
    assert!(!caller.is_operator());
    // A later millisecond: two tokens made in one are listed by their random ids.
    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    let operator = store.create(&Grant::Operator, "root", Pins::new()).await.unwrap();
    let operator = store.verify(operator.token.expose_secret()).await.unwrap().unwrap();
    assert!(operator.can_administer(&prod));

    // Persisted with its kind, listed oldest first.
    let text = admin.token.expose_secret().to_owned();
    drop(store);
    let store = backend.open().await;
    assert_eq!(store.verify(&text).await.unwrap().unwrap().grant, Grant::Admin(dev));
    let listed = serde_json::to_value(store.list().await.unwrap()).unwrap();
    assert_eq!(listed[0]["kind"], "admin");
    assert_eq!(listed[1]["kind"], "operator");
    assert!(listed[0].get("pins").is_none(), "no pins, no field: {listed}");
}

async fn pins_are_kept_replaced_and_persisted(backend: &dyn Backend) {
    let store = backend.open().await;
    let grant = Grant::Agent(scope("acme/shop/prod"));
    let agent = store.create(&grant, "ci", pins(&[("openai", "OPENAI_API_KEY_2")])).await.unwrap();
    let id = agent.info.id.clone();
    assert_eq!(agent.info.pins, pins(&[("openai", "OPENAI_API_KEY_2")]));
    // The verified caller carries them (a resolve reads no second row).
    let caller = store.verify(agent.token.expose_secret()).await.unwrap().unwrap();
    assert_eq!(caller.pins, pins(&[("openai", "OPENAI_API_KEY_2")]));
    let listed = serde_json::to_value(store.get(&id).await.unwrap().unwrap()).unwrap();
    assert_eq!(listed["pins"], serde_json::json!({ "openai": "OPENAI_API_KEY_2" }));

    // Replaced as a whole.
    let replaced = pins(&[("anthropic", "ANTHROPIC_API_KEY_3")]);
    let updated = store.set_pins(&id, replaced.clone()).await.unwrap().unwrap();
    assert_eq!(updated.pins, replaced);
    let caller = store.verify(agent.token.expose_secret()).await.unwrap().unwrap();
    assert_eq!(caller.pins, replaced, "the next request sees the new pins");
    assert_eq!(store.set_pins("000000000000", replaced.clone()).await.unwrap(), None);

    // Persisted.
    drop(store);
    let store = backend.open().await;
    assert_eq!(store.get(&id).await.unwrap().unwrap().pins, replaced);
    assert!(store.set_pins(&id, Pins::new()).await.unwrap().unwrap().pins.is_empty());
    drop(store);
    let store = backend.open().await;
    let listed = serde_json::to_value(store.get(&id).await.unwrap().unwrap()).unwrap();
    assert!(listed.get("pins").is_none(), "no pins, no field: {listed}");

    // A revoked token gets no pins back.
    assert_eq!(store.revoke(&id).await.unwrap(), Revoked::Revoked);
    assert_eq!(store.set_pins(&id, replaced).await.unwrap(), None);
    assert!(store.get(&id).await.unwrap().is_none());
}

async fn invalid_pins_are_refused_naming_the_entry_but_never_the_key_id(backend: &dyn Backend) {
    let store = backend.open().await;
    let grant = Grant::Admin(scope("acme/shop/prod"));
    let message = async |pins: Pins| match store.create(&grant, "x", pins).await {
        Err(TokenError::InvalidPins(message)) => message,
        other => panic!("{other:?}"),
    };
    let bad_slug = message(pins(&[("OpenAI", "OPENAI_API_KEY")])).await;
    assert!(bad_slug.contains("\"OpenAI\" is not a provider slug"), "{bad_slug}");
    let bad_key = message(pins(&[("openai", "sk-canary-pasted-key")])).await;
    assert!(bad_key.contains("\"openai\"") && !bad_key.contains("sk-canary"), "{bad_key}");
    let many: Pins = (0..=MAX_PINS).map(|n| (format!("p{n}"), "KEY".to_owned())).collect();
    assert!(message(many).await.contains("at most 64"));
    assert!(matches!(
        store.create(&Grant::Operator, "x", pins(&[("openai", "OPENAI_API_KEY")])).await,
        Err(TokenError::InvalidPins(message)) if message.contains("operator token")
    ));
    assert!(store.list().await.unwrap().is_empty(), "nothing was created");
    let operator = store.create(&Grant::Operator, "root", Pins::new()).await.unwrap();
    assert!(matches!(
        store.set_pins(&operator.info.id, pins(&[("openai", "OPENAI_API_KEY")])).await,
        Err(TokenError::InvalidPins(_))
    ));
}

async fn the_first_operator_is_made_once_and_the_last_one_is_kept(backend: &dyn Backend) {
    let store = backend.open().await;
    // An agent token is no operator token: the first operator is still made.
    let agent = store.create(&Grant::Agent(scope("a/b/c")), "agent", Pins::new()).await.unwrap();
    // Eight at once: exactly one is made.
    let tries: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.create_first_operator("first start").await.unwrap() })
        })
        .collect();
    let mut made = Vec::new();
    for task in tries {
        made.extend(task.await.unwrap());
    }
    assert_eq!(made.len(), 1, "exactly one first operator token");
    let first = &made[0];
    assert!(store.verify(first.token.expose_secret()).await.unwrap().unwrap().is_operator());
    assert!(store.create_first_operator("again").await.unwrap().is_none());

    // The last operator token is kept; with a second one, either may go.
    assert_eq!(store.revoke(&first.info.id).await.unwrap(), Revoked::LastOperator);
    let second = store.create(&Grant::Operator, "second", Pins::new()).await.unwrap();
    assert_eq!(store.revoke(&first.info.id).await.unwrap(), Revoked::Revoked);
    assert_eq!(store.revoke(&second.info.id).await.unwrap(), Revoked::LastOperator);
    assert_eq!(store.revoke(&agent.info.id).await.unwrap(), Revoked::Revoked);
    let kinds: Vec<_> = store.list().await.unwrap().iter().map(|token| token.kind).collect();
    assert_eq!(kinds, [TokenKind::Operator]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hosts_on_one_table_see_creates_pins_and_revokes_at_once() {
    let url = support::postgres_database().await;
    let (a, b) = (postgres_tokens(&url).await, postgres_tokens(&url).await);
    let grant = Grant::Agent(scope("acme/shop/prod"));
    let agent = a.create(&grant, "ci", Pins::new()).await.unwrap();
    let text = agent.token.expose_secret();
    assert_eq!(b.verify(text).await.unwrap().unwrap().grant, grant);
    let pinned = pins(&[("openai", "OPENAI_API_KEY_2")]);
    b.set_pins(&agent.info.id, pinned.clone()).await.unwrap().unwrap();
    assert_eq!(a.verify(text).await.unwrap().unwrap().pins, pinned);
    assert_eq!(b.revoke(&agent.info.id).await.unwrap(), Revoked::Revoked);
    assert!(a.verify(text).await.unwrap().is_none(), "revoked on B: refused on A at once");
}

async fn postgres_tokens(url: &str) -> TokenStore {
    TokenStore::new(Arc::new(PostgresTokens::open(url).await.unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_opening_an_empty_table_together_make_one_operator_token() {
    let url = support::postgres_database().await;
    let opens: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move {
                let store = postgres_tokens(&url).await;
                store.create_first_operator("first start").await.unwrap()
            })
        })
        .collect();
    let mut made = 0;
    for open in opens {
        made += usize::from(open.await.unwrap().is_some());
    }
    assert_eq!(made, 1);
    let listed = postgres_tokens(&url).await.list().await.unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
}

#[tokio::test]
async fn a_database_that_cannot_be_reached_is_unavailable_not_an_unknown_token() {
    // Nothing listens on port 1 of the loopback.
    let backend: StoreBackend = "postgres://platos@127.0.0.1:1/platos".parse().unwrap();
    let error = backend.open_tokens(std::path::Path::new("/nonexistent")).await.unwrap_err();
    assert_eq!(error.code(), "store_unavailable", "{error}");
}

/// `platos-host token ARGS` with `PLATOS_STORE=url`, no master key: its
/// exit status, stdout and stderr.
fn token_command(url: &str, data: &std::path::Path, args: &[&str]) -> (bool, String, String) {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_platos-host"))
        .arg("token")
        .args(args)
        .env("PLATOS_STORE", url)
        .env("PLATOS_DATA_DIR", data)
        .env_remove("ENCRYPTION_KEY")
        .env_remove("ENCRYPTION_KEY_PREVIOUS")
        .output()
        .unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (output.status.success(), text(&output.stdout), text(&output.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_commands_work_on_the_shared_table_without_the_master_key() {
    let url = support::postgres_database().await;
    let data = tempfile::tempdir().unwrap();
    let (ok, token, stderr) = token_command(&url, data.path(), &["create", "--operator"]);
    assert!(ok, "{stderr}");
    let token = token.trim();
    support::assert_no_secret(&stderr, token, "token create's stderr");
    let (ok, agent, stderr) = token_command(
        &url,
        data.path(),
        &["create", "--scope", "acme/shop/prod", "--label", "cli"],
    );
    assert!(ok, "{stderr}");
    // The table, not the data directory, holds them: a host sees them.
    assert!(!data.path().join("tokens").exists(), "no sled token database was made");
    let host = postgres_tokens(&url).await;
    assert!(host.verify(token).await.unwrap().unwrap().is_operator());
    let caller = host.verify(agent.trim()).await.unwrap().unwrap();
    assert_eq!(caller.grant, Grant::Agent(scope("acme/shop/prod")));
    let (ok, listed, stderr) = token_command(&url, data.path(), &["list", "--json"]);
    assert!(ok, "{stderr}");
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
    support::assert_no_secret(listed.to_string(), token, "token list");
    // Revoked from the command line: refused by the host at once.
    let (ok, _, stderr) = token_command(&url, data.path(), &["revoke", &caller.token_id]);
    assert!(ok, "{stderr}");
    assert!(host.verify(agent.trim()).await.unwrap().is_none());
    // The store opens on the database the commands migrated, with its key.
    let key = platos_host::crypto::EncryptionKey::parse(
        platos_host::crypto::ENCRYPTION_KEY_VAR,
        "0123456789abcdef0123456789abcdef",
    )
    .unwrap();
    let keyring = platos_host::crypto::Keyring::new(key, None);
    platos_host::store::PostgresStore::open(&url, keyring, Default::default()).await.unwrap();
}

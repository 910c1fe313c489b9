//! Live mode: recorded responses replayed by a mock upstream on loopback.
//!
//! A fixture directory holds one JSON file per case (`*.json`, run in name
//! order). The plugin's base-url variable is pointed at the mock server
//! (`http://127.0.0.1:<port>` plus the path of the variable's default), then
//! the harness runs `health-probe` → `authorize` → sends the request with a
//! real HTTP client → `interpret-health`, and checks that the mock saw the
//! declared auth and that the verdict is the one the fixture expects.
//!
//! ```json
//! {
//!   "name": "a valid key lists models",
//!   "credentials": {"ACME_API_KEY": "sk-test-1234"},
//!   "request": {"method": "GET", "path": "/v1/models"},
//!   "response": {
//!     "status": 200,
//!     "headers": {"content-type": "application/json"},
//!     "body": {"data": [{"id": "acme-large"}]}
//!   },
//!   "expect": "healthy",
//!   "expect_models": ["acme-large"]
//! }
//! ```
//!
//! Only `response` and `expect` are required. `credentials` default to the
//! harness's samples (canary secrets); `body` is sent as is when it is a JSON
//! string and serialized otherwise; `expect` is one verdict class or a list
//! of accepted ones.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Uri};
use axum::response::Response;
use serde::Deserialize;
use url::Url;

use super::checks::{HARNESS_NOW, VERDICT_CLASSES, describe_call_error, verdict_class};
use super::hints::{Named, in_every_language};
use super::names;
use super::report::Check;
use super::samples::{SampleBag, sample_bag};
use crate::provider::{AuthShape, HttpRequest, HttpResponse, Verdict};
use crate::runtime::Plugin;

/// One recorded case of a fixture directory.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    /// A name for people; the file stem when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// The key's variables; secrets not given get canaries, the base-url
    /// variable is always the mock server.
    #[serde(default)]
    pub credentials: BTreeMap<String, String>,
    /// What the mock must see, if the fixture cares.
    #[serde(default)]
    pub request: Option<FixtureRequest>,
    /// What the mock answers.
    pub response: FixtureResponse,
    /// The verdict class (or classes) the plugin must return.
    pub expect: Expect,
    /// Model ids the healthy verdict must list (a subset check).
    #[serde(default)]
    pub expect_models: Option<Vec<String>>,
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture")
            .field("name", &self.name)
            .field("credentials", &self.credentials.keys().collect::<Vec<_>>())
            .field("request", &self.request)
            .field("response_status", &self.response.status)
            .field("expect", &self.expect)
            .finish()
    }
}

/// The request a fixture expects the mock to receive.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureRequest {
    /// The method, e.g. `GET`.
    #[serde(default)]
    pub method: Option<String>,
    /// The path, without the query, e.g. `/v1/models`.
    #[serde(default)]
    pub path: Option<String>,
}

/// The response the mock upstream sends.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureResponse {
    /// The HTTP status (100–999).
    pub status: u16,
    /// Response headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// The body: a JSON string is sent as is, any other JSON value serialized.
    #[serde(default)]
    pub body: serde_json::Value,
}

impl FixtureResponse {
    fn body_bytes(&self) -> Vec<u8> {
        match &self.body {
            serde_json::Value::Null => Vec::new(),
            serde_json::Value::String(text) => text.clone().into_bytes(),
            other => other.to_string().into_bytes(),
        }
    }
}

/// One accepted verdict class, or several.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Expect {
    /// Exactly this class.
    One(String),
    /// Any of these classes.
    Any(Vec<String>),
}

impl Expect {
    fn classes(&self) -> Vec<&str> {
        match self {
            Expect::One(class) => vec![class.as_str()],
            Expect::Any(classes) => classes.iter().map(String::as_str).collect(),
        }
    }
}

/// Reads every `*.json` fixture of `dir`, sorted by file name. The error
/// names the file and the problem.
pub fn load_fixtures(dir: &Path) -> Result<Vec<(PathBuf, Fixture)>, String> {
    let entries = std::fs::read_dir(dir)
        .map_err(|error| format!("cannot read the fixture directory {}: {error}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    paths.sort();
    let mut fixtures = Vec::new();
    for path in paths {
        let text = std::fs::read_to_string(&path)
            .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
        let fixture: Fixture = serde_json::from_str(&text)
            .map_err(|error| format!("{} is not a valid fixture: {error}", path.display()))?;
        for class in fixture.expect.classes() {
            if !VERDICT_CLASSES.contains(&class) {
                return Err(format!(
                    "{}: expect {class:?} is not a verdict class ({})",
                    path.display(),
                    VERDICT_CLASSES.join(", ")
                ));
            }
        }
        if !(100..=999).contains(&fixture.response.status) {
            return Err(format!(
                "{}: response status {} is not an HTTP status (100-999)",
                path.display(),
                fixture.response.status
            ));
        }
        fixtures.push((path, fixture));
    }
    Ok(fixtures)
}

/// What the mock received.
#[derive(Clone)]
struct Seen {
    method: String,
    path_and_query: String,
    headers: Vec<(String, String)>,
}

/// Status, headers and body of the mock's next answer.
type MockResponse = (u16, Vec<(String, String)>, Vec<u8>);

#[derive(Default)]
struct MockState {
    response: Option<MockResponse>,
    seen: Vec<Seen>,
}

type Shared = Arc<Mutex<MockState>>;

/// The mock upstream: an axum server on 127.0.0.1 answering every request
/// with the current case's response.
struct Mock {
    addr: SocketAddr,
    state: Shared,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Mock {
    async fn start() -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let state: Shared = Arc::default();
        let app = axum::Router::new().fallback(answer).with_state(state.clone());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await;
        });
        Ok(Mock { addr, state, stop: Some(stop), task })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MockState> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.task).await;
        self.task.abort();
    }
}

async fn answer(
    State(state): State<Shared>,
    method: axum::http::Method,
    uri: Uri,
    headers: HeaderMap,
    _body: Bytes,
) -> Response {
    let mut state = state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    state.seen.push(Seen {
        method: method.to_string(),
        path_and_query: uri.path_and_query().map(|pq| pq.to_string()).unwrap_or_default(),
        headers: headers
            .iter()
            .map(|(name, value)| {
                (name.to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned())
            })
            .collect(),
    });
    let (status, headers, body) =
        state.response.clone().unwrap_or((599, Vec::new(), b"no fixture response".to_vec()));
    let mut response = Response::builder().status(status);
    for (name, value) in headers {
        response = response.header(name, value);
    }
    response.body(Body::from(body)).unwrap_or_else(|_| {
        let mut fallback = Response::new(Body::from("the fixture's response headers are invalid"));
        *fallback.status_mut() = axum::http::StatusCode::INTERNAL_SERVER_ERROR;
        fallback
    })
}

/// The live checks for `plugin` with the fixtures of `dir`.
pub(crate) async fn live_checks(
    plugin: &Plugin,
    dir: &Path,
    given: &BTreeMap<String, String>,
    hits: &mut Vec<String>,
) -> Vec<Check> {
    const ABOUT: &str = "live mode: recorded responses from a mock upstream on 127.0.0.1";
    let manifest = plugin.manifest();
    let Some(base_var) = manifest.base_url_var() else {
        return vec![Check::skip(
            names::LIVE,
            ABOUT,
            "the manifest declares no base-url variable, so the plugin cannot be pointed at a mock upstream; live mode needs one",
        )];
    };
    let fixtures = match load_fixtures(dir) {
        Ok(fixtures) if fixtures.is_empty() => {
            return vec![Check::fail(
                names::LIVE,
                ABOUT,
                format!("*.json fixtures in {}", dir.display()),
                "no fixture files",
                "add one JSON file per case (see docs/plugin-authors.md, \"Live mode\")",
            )];
        }
        Ok(fixtures) => fixtures,
        Err(problem) => {
            return vec![Check::fail(
                names::LIVE,
                ABOUT,
                "valid fixture files",
                problem,
                "fix the fixture (see docs/plugin-authors.md, \"Live mode\", for the format)",
            )];
        }
    };
    let mock = match Mock::start().await {
        Ok(mock) => mock,
        Err(error) => {
            return vec![Check::fail(
                names::LIVE,
                ABOUT,
                "a mock server on 127.0.0.1",
                format!("cannot listen on 127.0.0.1: {error}"),
                "allow the harness to bind a loopback port",
            )];
        }
    };
    let client = match reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            mock.stop().await;
            return vec![Check::fail(
                names::LIVE,
                ABOUT,
                "an HTTP client",
                error.to_string(),
                "report this harness bug",
            )];
        }
    };
    let mut checks = vec![Check::pass(
        names::LIVE,
        ABOUT,
        format!("fixtures in {}", dir.display()),
        format!("{} fixtures, mock at http://{} via {}", fixtures.len(), mock.addr, base_var.name),
    )];
    for (path, fixture) in &fixtures {
        let stem = path.file_stem().and_then(|stem| stem.to_str()).unwrap_or("case");
        let name = format!("{}{stem}", names::LIVE_PREFIX);
        let about = format!("live: {}", fixture.name.as_deref().unwrap_or(stem));
        let expected = expected_text(fixture);
        let case = Case { plugin, mock: &mock, client: &client, base_var: &base_var.name };
        let check = match case.run(fixture, given, hits).await {
            Ok(got) => Check::pass(name, about, expected, got),
            Err((got, fix)) => Check::fail(name, about, expected, got, fix),
        };
        checks.push(check);
    }
    mock.stop().await;
    checks
}

fn expected_text(fixture: &Fixture) -> String {
    let mut text = format!("verdict {}", fixture.expect.classes().join(" or "));
    if let Some(models) = &fixture.expect_models {
        text.push_str(&format!(" listing {}", models.join(", ")));
    }
    text.push_str(", and the mock sees the declared auth");
    text
}

struct Case<'a> {
    plugin: &'a Plugin,
    mock: &'a Mock,
    client: &'a reqwest::Client,
    base_var: &'a str,
}

type CaseFailure = (String, String);

impl Case<'_> {
    async fn run(
        &self,
        fixture: &Fixture,
        given: &BTreeMap<String, String>,
        hits: &mut Vec<String>,
    ) -> Result<String, CaseFailure> {
        let manifest = self.plugin.manifest();
        let mut values = given.clone();
        values.extend(fixture.credentials.iter().map(|(k, v)| (k.clone(), v.clone())));
        // The mock stands in for the provider at the same path as the real base.
        let path = values
            .get(self.base_var)
            .cloned()
            .or_else(|| manifest.base_url_var().and_then(|var| var.default_value.clone()))
            .and_then(|base| Url::parse(&base).ok())
            .map(|base| base.path().trim_end_matches('/').to_owned())
            .unwrap_or_default();
        let origin = format!("http://{}", self.mock.addr);
        values.insert(self.base_var.to_owned(), format!("{origin}{path}"));
        let bag = sample_bag(manifest, &values);

        let failure = |error: &crate::runtime::CallError, hits: &mut Vec<String>| {
            describe_call_error(error, hits, Some(&bag))
        };
        let probe =
            self.plugin.health_probe(&bag.credentials).await.map_err(|e| failure(&e, hits))?;
        if !probe.url.starts_with(&origin) {
            return Err((
                format!(
                    "the probe went to {}, not to {} ({})",
                    bag.redact(&probe.url),
                    origin,
                    self.base_var
                ),
                format!(
                    "build the probe URL in {} from the base URL, {} when it is set, else its default: {}",
                    in_every_language(Named::HealthProbe),
                    self.base_var,
                    in_every_language(Named::BaseUrl)
                ),
            ));
        }
        let request = self
            .plugin
            .authorize(&bag.credentials, &probe, HARNESS_NOW)
            .await
            .map_err(|e| failure(&e, hits))?;

        {
            let mut state = self.mock.lock();
            let response = &fixture.response;
            let headers = response.headers.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            state.response = Some((response.status, headers, response.body_bytes()));
            state.seen.clear();
        }
        let response = self.send(&request).await.map_err(|error| {
            (
                format!("sending the authorized probe to the mock failed: {}", bag.redact(&error)),
                "the authorized request must be valid HTTP (method, URL, headers)".to_owned(),
            )
        })?;
        let seen = self.mock.lock().seen.clone();
        let Some(seen) = seen.first() else {
            return Err((
                "the mock saw no request".to_owned(),
                "report this harness bug".to_owned(),
            ));
        };
        check_seen_auth(&manifest.auth, &bag, seen)?;
        if let Some(expected) = &fixture.request {
            check_seen_request(expected, seen)?;
        }

        let verdict = self
            .plugin
            .interpret_health(&bag.credentials, &response)
            .await
            .map_err(|e| failure(&e, hits))?;
        let class = verdict_class(&verdict);
        let got = format!("{class}: {}", verdict.message().chars().take(160).collect::<String>());
        if !fixture.expect.classes().contains(&class) {
            return Err((
                got,
                format!(
                    "interpret-health must read HTTP {} with this body as {} (or fix the fixture's `expect`)",
                    fixture.response.status,
                    fixture.expect.classes().join(" or ")
                ),
            ));
        }
        if let Some(wanted) = &fixture.expect_models {
            let listed = match &verdict {
                Verdict::Healthy { models, .. } => models.clone(),
                _ => Vec::new(),
            };
            let missing: Vec<&String> = wanted.iter().filter(|id| !listed.contains(id)).collect();
            if !missing.is_empty() {
                return Err((
                    format!(
                        "{got}; models listed: {}; missing: {}",
                        listed.join(", "),
                        missing.iter().map(|id| id.as_str()).collect::<Vec<_>>().join(", ")
                    ),
                    "list the model ids of the response in the healthy verdict (`model_ids_from_json`)".to_owned(),
                ));
            }
        }
        Ok(format!("{} {} → {got}", seen.method, seen.path_and_query_redacted(&bag)))
    }

    async fn send(&self, request: &HttpRequest) -> Result<HttpResponse, String> {
        let mut builder = self.client.request(request.method.into(), &request.url);
        for (name, value) in &request.headers {
            builder = builder.header(name, value);
        }
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }
        let response = builder.send().await.map_err(|error| error.without_url().to_string())?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (name.to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned())
            })
            .collect();
        let body = response.bytes().await.map_err(|error| error.without_url().to_string())?;
        Ok(HttpResponse { status, headers, body: body.to_vec() })
    }
}

impl Seen {
    fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .collect()
    }

    fn path_and_query_redacted(&self, bag: &SampleBag) -> String {
        bag.redact(&self.path_and_query)
    }
}

/// Whether the mock saw the declared auth on the wire.
fn check_seen_auth(shape: &AuthShape, bag: &SampleBag, seen: &Seen) -> Result<(), CaseFailure> {
    let secret = |var: &str| bag.secret(var).unwrap_or_default().to_owned();
    let (ok, wanted, got) = match shape {
        AuthShape::Bearer { env_var } => {
            let values = seen.header("authorization");
            let wanted = format!("Bearer {}", secret(env_var));
            (
                values == [wanted.as_str()],
                format!("Authorization: Bearer <{env_var}>"),
                format!("authorization: {}", bag.redact(&values.join(", "))),
            )
        }
        AuthShape::Header { header, env_var } => {
            let values = seen.header(header);
            let wanted = secret(env_var);
            (
                values == [wanted.as_str()],
                format!("{header}: <{env_var}>"),
                format!("{header}: {}", bag.redact(&values.join(", "))),
            )
        }
        AuthShape::Query { param, env_var } => {
            let url = Url::parse(&format!("http://mock{}", seen.path_and_query)).ok();
            let values: Vec<String> = url
                .map(|url| {
                    url.query_pairs().filter(|(k, _)| k == param).map(|(_, v)| v.into()).collect()
                })
                .unwrap_or_default();
            (
                values == [secret(env_var)],
                format!("?{param}=<{env_var}>"),
                bag.redact(&seen.path_and_query),
            )
        }
        AuthShape::Custom { .. } => return Ok(()),
    };
    if ok {
        Ok(())
    } else {
        Err((
            format!("the mock saw {got}, expected {wanted}"),
            format!("apply the declared auth shape in {}", in_every_language(Named::Authorize)),
        ))
    }
}

fn check_seen_request(expected: &FixtureRequest, seen: &Seen) -> Result<(), CaseFailure> {
    let path = seen.path_and_query.split('?').next().unwrap_or_default();
    if let Some(method) = &expected.method
        && !method.eq_ignore_ascii_case(&seen.method)
    {
        return Err((
            format!("the mock saw {} {path}, expected method {method}", seen.method),
            "send the probe with the method the provider's API expects".to_owned(),
        ));
    }
    if let Some(wanted) = &expected.path
        && wanted != path
    {
        return Err((
            format!("the mock saw {} {path}, expected path {wanted}", seen.method),
            "build the probe URL from the base URL plus the endpoint's path (`join_url`)"
                .to_owned(),
        ));
    }
    Ok(())
}

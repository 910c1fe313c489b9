//! The checks that need no network: load, manifest, authorize, probe,
//! interpret-health on canned responses, and the runtime's limits.

use std::collections::BTreeMap;

use super::auth::{check_shape, describe_request, expected_shape};
use super::hints::{Named, in_every_language as named, wit_function};
use super::names;
use super::report::Check;
use super::samples::{SampleBag, sample_bag, sample_host};
use crate::policy::hosts::OutboundRefusal;
use crate::provider::{
    AuthShape, Credentials, EnvVarRole, HttpRequest, HttpResponse, Manifest, Method,
};
use crate::runtime::{CallError, CallErrorKind, CallLimits, LoadError, Plugin};

/// The `now` every `authorize` call of the harness gets, so runs compare.
pub(crate) const HARNESS_NOW: u64 = 1_750_000_000;

/// The class of a verdict as the WIT spells it: `healthy`, `invalid-credential`, ...
pub use crate::policy::verdicts::class_name as verdict_class;

/// The five verdict classes.
pub const VERDICT_CLASSES: &[&str] =
    &["healthy", "invalid-credential", "quota-limited", "unreachable", "degraded"];

/// The checks of loading: component, imports, exports, the `manifest` call
/// and the manifest rules. A failure at one stage skips the later ones.
pub(crate) fn load_checks(
    result: &Result<Plugin, LoadError>,
    hits: &mut Vec<String>,
) -> Vec<Check> {
    const STAGES: [(&str, &str); 5] = [
        (names::LOAD_COMPONENT, "the file is a WebAssembly component the host compiles"),
        (names::LOAD_IMPORTS, "imports stay within WASI 0.2, which the host links deny-all"),
        (names::LOAD_EXPORTS, "exports a provider API this host supports and links"),
        (names::LOAD_MANIFEST, "`manifest` answers within the limits"),
        (names::MANIFEST_RULES, "the manifest follows every rule the host enforces on load"),
    ];
    let passed_got = |plugin: &Plugin, stage: usize| -> String {
        match stage {
            0 => format!("compiled (sha256 {}…)", &plugin.sha256()[..12]),
            1 => "only WASI 0.2 imports".to_owned(),
            2 => format!("exports platos:provider/plugin@{}", plugin.api_version()),
            3 => format!("manifest of {}", plugin.id()),
            _ => "every rule holds".to_owned(),
        }
    };
    let expected = [
        "a component built for wasm32-wasip2 (or by componentize-py / jco)",
        "imports only from wasi:{io,clocks,random,cli,filesystem,sockets}@0.2.x",
        "the export platos:provider/plugin@0.2.0 (or @0.1.0)",
        "a manifest, without a trap and within the limits",
        "no broken rule",
    ];
    let (failed_stage, got, fix) = match result {
        Ok(plugin) => {
            return STAGES
                .iter()
                .enumerate()
                .map(|(stage, (name, about))| {
                    Check::pass(*name, *about, expected[stage], passed_got(plugin, stage))
                })
                .collect();
        }
        Err(LoadError::Read { source, .. }) => (
            0,
            format!("the file could not be read: {source}"),
            "pass the path of the built component, e.g. target/wasm32-wasip2/release/<crate>.wasm"
                .to_owned(),
        ),
        Err(LoadError::Compile { message, .. }) => (
            0,
            format!("not a component: {}", first_line(message)),
            "build a component with `cargo build --release --target wasm32-wasip2` (a core module from wasm32-unknown-unknown is not one; wrap it with `wasm-tools component new`), and pass the .wasm under target/wasm32-wasip2/release".to_owned(),
        ),
        Err(LoadError::DisallowedImports { imports, .. }) => (
            1,
            format!("imports the sandbox does not grant: {}", imports.join(", ")),
            "plugins are sans-IO: drop the dependency or code that imports these (a custom host interface, wasi:http, WASI 0.3); describe HTTP requests in `health-probe`/`authorize` and let the host send them".to_owned(),
        ),
        Err(LoadError::UnsupportedApi { found, supported, .. }) => (
            2,
            format!("exports {}", if found.is_empty() { "nothing".to_owned() } else { found.join(", ") }),
            format!(
                "export {} for the world `provider` of wit/since_v0.2.0/provider.wit (or the older wit/since_v0.1.0), with every function of its `plugin` interface: {}",
                supported.join(" or "),
                named(Named::Export)
            ),
        ),
        Err(LoadError::Link { message, .. }) => (
            2,
            format!("cannot be linked: {}", first_line(message)),
            "build against wit/since_v0.2.0/provider.wit (or wit/since_v0.1.0) unchanged (the platos-plugin-sdk crate does); the provider world imports nothing".to_owned(),
        ),
        Err(LoadError::Manifest { call: source, .. }) => {
            let (got, fix) = describe_call_error(source, hits, None);
            (3, got, fix)
        }
        Err(LoadError::InvalidManifest { problems, .. }) => {
            (4, problems.join("\n"), manifest_fixes(problems))
        }
        Err(LoadError::NameOwnership { problems, .. }) => (
            4,
            problems.join("\n"),
            "declare only variables under your own prefix (your slug upper-cased, `-` as `_`, then `_`), or ask the operator to grant you the name in the plugin policy file".to_owned(),
        ),
        Err(LoadError::DuplicateSlug { slug, .. }) => (
            4,
            format!("slug {slug:?} is taken"),
            "choose another slug".to_owned(),
        ),
    };
    STAGES
        .iter()
        .enumerate()
        .map(|(stage, (name, about))| {
            if stage < failed_stage {
                Check::pass(*name, *about, expected[stage], "ok")
            } else if stage == failed_stage {
                Check::fail(*name, *about, expected[stage], got.clone(), fix.clone())
            } else {
                Check::skip(*name, *about, format!("{} failed", STAGES[failed_stage].0))
            }
        })
        .collect()
}

/// The cause of a trap without wasmtime's backtrace: `wasm trap: ...` when
/// present, else the message's last line.
fn trap_cause(message: &str) -> String {
    if let Some(start) = message.find("wasm trap:") {
        return first_line(&message[start..]).to_owned();
    }
    message.lines().rev().find(|line| !line.trim().is_empty()).unwrap_or(message).trim().to_owned()
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// Fix hints for the manifest problems the policy reported, one per kind.
fn manifest_fixes(problems: &[String]) -> String {
    const HINTS: &[(&str, &str)] = &[
        (
            "alias ",
            "give each alias an env var name, `client = \"all\"` or a declared client id, the `suffix`, `domain` or `note` its form needs, and no clash with another variable or alias for the same client",
        ),
        (
            "client",
            "declare `[[clients]]` with unique lower-case ids (not `all`) and name the official SDK's in `default_client`",
        ),
        (
            "reserved",
            "rename the variable: the host hands the access token to `authorize` as PLATOS_ACCESS_TOKEN",
        ),
        (
            "slug",
            "`slug`: lower-case letters, digits and hyphens, starting with a letter or digit, at most 64 characters (e.g. `acme`)",
        ),
        (
            "must match ^[A-Z]",
            "env var names: upper-case letters, digits and underscores, starting with a letter (e.g. `ACME_API_KEY`)",
        ),
        ("declared twice", "declare each env var once"),
        ("role `secret`", "give the variable that holds the API key `role = \"secret\"`"),
        ("role `base-url`", "keep at most one variable with `role = \"base-url\"`"),
        ("must be an http(s) URL", "a base-url default must start with https:// (or http://)"),
        ("auth uses", "point `auth.env_var` at a declared variable whose role is `secret`"),
        ("empty header or query", "name the header or query parameter in `auth`"),
        (
            "allowed host",
            "write allowed hosts as bare lower-case DNS names (`api.acme.com`, `*` for one label: `*.acme.com`), without scheme, port or path",
        ),
        (
            "no allowed hosts",
            "list the API's host in `allowed_hosts`, or declare a base-url variable",
        ),
        (
            "model classes",
            "list the classes of the models in `model_classes`, and give every default model one of them",
        ),
        (
            "default model",
            "list at least one default model, each with a unique non-empty id and a declared class",
        ),
        ("docs URL", "`docs_url` must be an https:// URL"),
        ("display name", "set `display_name`"),
        ("plugin version", "set `plugin_version` (semver, e.g. 0.1.0)"),
    ];
    let mut fixes: Vec<&str> = Vec::new();
    for problem in problems {
        let hint = HINTS
            .iter()
            .find(|(needle, _)| problem.contains(needle))
            .map(|(_, hint)| *hint)
            .unwrap_or("fix the manifest as the message says");
        if !fixes.contains(&hint) {
            fixes.push(hint);
        }
    }
    format!("in manifest.toml (or your manifest()): {}", fixes.join("; "))
}

/// What a failed call returned, and how to fix it. A limit is recorded in
/// `hits` for the `limits` check.
pub(crate) fn describe_call_error(
    error: &CallError,
    hits: &mut Vec<String>,
    bag: Option<&SampleBag>,
) -> (String, String) {
    let redact = |text: &str| bag.map_or_else(|| text.to_owned(), |bag| bag.redact(text));
    let function = error.function;
    let limit = |name: &str, hits: &mut Vec<String>| {
        hits.push(format!("{function}: {name}"));
    };
    match &error.kind {
        CallErrorKind::CpuLimit(budget) => {
            limit(&format!("CPU limit ({budget:?})"), hits);
            (
                format!("{function} exceeded the CPU limit of {budget:?}"),
                "the call ran too long: no unbounded loops; work on the input once (e.g. parse a body with serde_json once, do not scan it repeatedly)".to_owned(),
            )
        }
        CallErrorKind::MemoryLimit { limit: cap, wanted } => {
            limit(&format!("memory limit ({} MiB)", cap >> 20), hits);
            (
                format!("{function} exceeded the memory limit of {cap} bytes (wanted {wanted})"),
                "allocate less: do not copy or grow buffers in proportion to a large body more than once; read only what the verdict needs".to_owned(),
            )
        }
        CallErrorKind::Timeout(wall) => {
            limit(&format!("wall-clock limit ({wall:?})"), hits);
            (
                format!("{function} did not finish within the wall-clock limit of {wall:?}"),
                "do not sleep or block: plugins get no I/O, so waiting never helps".to_owned(),
            )
        }
        CallErrorKind::OutputTooLarge { size, limit: cap } => {
            limit(&format!("output limit ({cap} bytes)"), hits);
            (
                format!("{function} returned {size} bytes, more than the output limit of {cap}"),
                format!(
                    "return less: cap messages (200 characters, e.g. {}) and model lists; never echo a whole response body",
                    named(Named::RedactedSnippet)
                ),
            )
        }
        CallErrorKind::TooManyModels { count, limit: cap } => {
            limit(&format!("model-id limit ({cap})"), hits);
            (
                format!("{function} returned {count} model ids, more than the limit of {cap}"),
                "list fewer models: the discovered models of one key, or a handful of default models".to_owned(),
            )
        }
        CallErrorKind::SecretOutOfPlace { expected, places } => (
            format!(
                "the host refused the request {function} described: a secret outside {expected}: {}",
                places.join("; ")
            ),
            format!(
                "apply only the declared shape in {}; never copy a secret into the URL, another header or the body",
                named(Named::Authorize)
            ),
        ),
        CallErrorKind::Trap(message) => (
            format!("{function} trapped: {}", trap_cause(&redact(message))),
            format!(
                "a trap is a panic, unwrap, abort, uncaught exception or out-of-bounds access{in_function}: handle the input instead (parse with {parse}, then return a degraded verdict or a plugin error); the panic message is in the host's log, e.g. `PLATOS_LOG=info platos-host plugin call <file> {function} --input ...`",
                in_function = function_named(function),
                parse = named(Named::ParseJson),
            ),
        ),
        CallErrorKind::Provider(failure) => (
            format!(
                "{function} returned an error ({:?}): {}",
                failure.code,
                redact(&failure.message)
            ),
            format!(
                "{function}{in_function} must succeed for a key with every required variable set (the harness sets secrets to canaries and leaves defaulted variables unset); for a value the harness cannot guess, pass --var NAME=VALUE (HarnessOptions::values)",
                in_function = function_named(function),
            ),
        ),
        CallErrorKind::Refused(refusal) => (
            format!("the host refused the request {function} described: {refusal}"),
            refusal_fix(refusal),
        ),
        CallErrorKind::Unsupported(unsupported) => (
            format!("{function} {unsupported}"),
            format!(
                "build the plugin against platos:provider@{since} (wit/since_v{since}; the platos-plugin-sdk crate does){exporting}",
                since = unsupported.since,
                exporting = wit_function(function)
                    .map(|function| format!(" and export {}", named(function)))
                    .unwrap_or_default(),
            ),
        ),
    }
}

/// ` (in <the function in every language>)` for a WIT function name, empty
/// for anything else.
fn function_named(function: &str) -> String {
    wit_function(function).map(|function| format!(" (in {})", named(function))).unwrap_or_default()
}

fn refusal_fix(refusal: &OutboundRefusal) -> String {
    match refusal {
        OutboundRefusal::ForeignHost { .. } => format!("send requests only to a host in the manifest's `allowed_hosts` or to the configured base URL (build URLs from it: {}); add the API's host to `allowed_hosts` if it is missing", named(Named::BaseUrl)),
        OutboundRefusal::InsecureScheme { .. } => "use https:// on port 443 for manifest hosts; plain http only works through a configured base URL".to_owned(),
        OutboundRefusal::UserInfo => "never put credentials in the URL's authority (user:password@): use the declared auth shape".to_owned(),
        OutboundRefusal::MalformedUrl => "return an absolute http(s) URL".to_owned(),
        OutboundRefusal::MalformedHeader { .. } => "header names must be tokens and values must not contain control characters (no CR/LF)".to_owned(),
    }
}

/// The harness's state while it checks one loaded plugin.
pub(crate) struct Session<'a> {
    pub plugin: &'a Plugin,
    pub limits: &'a CallLimits,
    pub checks: Vec<Check>,
    pub hits: Vec<String>,
}

impl<'a> Session<'a> {
    fn manifest(&self) -> &'a Manifest {
        self.plugin.manifest()
    }

    fn failure(&mut self, error: &CallError, bag: Option<&SampleBag>) -> (String, String) {
        describe_call_error(error, &mut self.hits, bag)
    }

    /// `health-probe` and `authorize`: the probe's host, the auth shape, no
    /// leak, the authorize host, determinism and the missing-credential path.
    pub async fn probe_and_authorize(&mut self, given: &BTreeMap<String, String>) {
        let manifest = self.manifest();
        let plugin = self.plugin;
        let bag = sample_bag(manifest, given);

        const PROBE_ABOUT: &str = "`health-probe` describes a request to an allowed host";
        let allowed = plugin.allowed_hosts(&bag.credentials).describe();
        let probe = match plugin.health_probe(&bag.credentials).await {
            Ok(probe) => {
                self.checks.push(Check::pass(
                    names::PROBE_ALLOWED_HOST,
                    PROBE_ABOUT,
                    format!("a request to one of: {allowed}"),
                    describe_request(&bag, &probe),
                ));
                Some(probe)
            }
            Err(error) => {
                let (got, fix) = self.failure(&error, Some(&bag));
                self.checks.push(Check::fail(
                    names::PROBE_ALLOWED_HOST,
                    PROBE_ABOUT,
                    format!("a request to one of: {allowed}"),
                    got,
                    fix,
                ));
                None
            }
        };
        let target = probe.clone().unwrap_or_else(|| {
            let base = manifest
                .base_url(&bag.credentials)
                .map(|base| base.trim_end_matches('/').to_owned())
                .unwrap_or_else(|| format!("https://{}", sample_host(manifest)));
            HttpRequest::get(format!("{base}/harness-check"))
        });
        let post = HttpRequest {
            method: Method::Post,
            url: target.url.clone(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("accept".into(), "application/json".into()),
            ],
            body: Some(br#"{"model":"harness-model","input":"platos plugin harness"}"#.to_vec()),
        };

        const SHAPE_ABOUT: &str = "`authorize` applies the declared auth shape";
        const LEAK_ABOUT: &str = "`authorize` puts secrets nowhere but where the shape says";
        const HOST_ABOUT: &str = "`authorize` keeps the request on an allowed host";
        const DETERMINISM_ABOUT: &str = "`authorize` gives equal output for equal input";
        let shape = expected_shape(&manifest.auth);

        let mut authorized = Vec::new();
        let mut refused = None;
        let mut errored = None;
        // Secrets out of place: the runtime refuses such a request and names
        // every place; the harness reports them.
        let mut leaked = Vec::new();
        for (label, request) in [("the probe request", &target), ("a POST with a JSON body", &post)]
        {
            match plugin.authorize(&bag.credentials, request, HARNESS_NOW).await {
                Ok(result) => authorized.push((label, request.clone(), result)),
                Err(CallError { kind: CallErrorKind::SecretOutOfPlace { places, .. }, .. }) => {
                    leaked.extend(places.iter().map(|place| format!("for {label}: {place}")));
                }
                Err(error) => {
                    let is_refusal = matches!(error.kind, CallErrorKind::Refused(_));
                    let (got, fix) = self.failure(&error, Some(&bag));
                    let got = format!("for {label}: {got}");
                    if is_refusal {
                        refused.get_or_insert((got, fix));
                    } else {
                        errored.get_or_insert((got, fix));
                    }
                }
            }
        }

        match &refused {
            Some((got, fix)) => self.checks.push(Check::fail(
                names::AUTHORIZE_ALLOWED_HOST,
                HOST_ABOUT,
                format!("a request to one of: {allowed}"),
                got.clone(),
                fix.clone(),
            )),
            None if authorized.is_empty() => self.checks.push(Check::skip(
                names::AUTHORIZE_ALLOWED_HOST,
                HOST_ABOUT,
                "authorize returned no request",
            )),
            None => self.checks.push(Check::pass(
                names::AUTHORIZE_ALLOWED_HOST,
                HOST_ABOUT,
                format!("a request to one of: {allowed}"),
                "every authorized request stays on an allowed host",
            )),
        }

        // The shape: every authorized request carries it.
        let mut shape_problems = Vec::new();
        for (label, _, result) in &authorized {
            if let Err(problem) = check_shape(manifest, &bag, result) {
                shape_problems.push(format!("for {label}: {problem}"));
            }
        }
        if let Some((got, fix)) = &errored {
            self.checks.push(Check::fail(names::AUTHORIZE_SHAPE, SHAPE_ABOUT, &shape, got, fix));
        } else if authorized.is_empty() {
            let why = if leaked.is_empty() {
                "authorize returned no request"
            } else {
                "the host refused every authorized request (see the no-leak check)"
            };
            self.checks.push(Check::skip(names::AUTHORIZE_SHAPE, SHAPE_ABOUT, why));
        } else if shape_problems.is_empty() {
            let got = describe_request(&bag, &authorized[0].2);
            self.checks.push(Check::pass(names::AUTHORIZE_SHAPE, SHAPE_ABOUT, &shape, got));
        } else {
            self.checks.push(Check::fail(
                names::AUTHORIZE_SHAPE,
                SHAPE_ABOUT,
                &shape,
                shape_problems.join("\n"),
                shape_fix(&manifest.auth),
            ));
        }

        // No leak anywhere else.
        let leak_expected = match &manifest.auth {
            AuthShape::Custom { .. } => {
                "no secret verbatim in the URL or body; in headers only in Authorization or a header the auth description names; at least one secret (the signing key) nowhere"
            }
            AuthShape::Query { .. } => {
                "the secret only in its query parameter: not in headers, other URL parts or the body"
            }
            _ => "the secret only in its header: not in other headers, the URL or the body",
        };
        if authorized.is_empty() && leaked.is_empty() {
            self.checks.push(Check::skip(
                names::AUTHORIZE_NO_LEAK,
                LEAK_ABOUT,
                "authorize returned no request",
            ));
        } else if leaked.is_empty() {
            self.checks.push(Check::pass(
                names::AUTHORIZE_NO_LEAK,
                LEAK_ABOUT,
                leak_expected,
                "no secret outside its place",
            ));
        } else {
            self.checks.push(Check::fail(
                names::AUTHORIZE_NO_LEAK,
                LEAK_ABOUT,
                leak_expected,
                format!("secret leaked: {}", leaked.join("; ")),
                format!("apply only the declared shape in {}; never copy a secret into the URL, another header or the body, and keep requests unchanged otherwise", named(Named::Authorize)),
            ));
        }

        // Determinism: the probe request again.
        if let Some((_, request, first)) = authorized.first() {
            match plugin.authorize(&bag.credentials, request, HARNESS_NOW).await {
                Ok(second) if &second == first => self.checks.push(Check::pass(
                    names::AUTHORIZE_DETERMINISTIC,
                    DETERMINISM_ABOUT,
                    "the same request twice",
                    "the same request twice",
                )),
                Ok(second) => self.checks.push(Check::fail(
                    names::AUTHORIZE_DETERMINISTIC,
                    DETERMINISM_ABOUT,
                    describe_request(&bag, first),
                    describe_request(&bag, &second),
                    "derive everything from the inputs (credentials, request, `now`): no random nonces, counters or clocks of your own",
                )),
                Err(error) => {
                    let (got, fix) = self.failure(&error, Some(&bag));
                    self.checks.push(Check::fail(
                        names::AUTHORIZE_DETERMINISTIC,
                        DETERMINISM_ABOUT,
                        "the same request twice",
                        format!("the second call failed: {got}"),
                        fix,
                    ));
                }
            }
        } else {
            self.checks.push(Check::skip(
                names::AUTHORIZE_DETERMINISTIC,
                DETERMINISM_ABOUT,
                "authorize returned no request",
            ));
        }

        self.missing_credential(&bag, &target).await;
    }

    /// `authorize` without any secret must return a plugin error, not a
    /// request without auth and not a trap.
    async fn missing_credential(&mut self, bag: &SampleBag, target: &HttpRequest) {
        const ABOUT: &str = "`authorize` without the key returns an error, not a trap";
        let manifest = self.manifest();
        let required: Vec<&str> = manifest
            .env_vars
            .iter()
            .filter(|var| var.role == EnvVarRole::Secret && var.required)
            .map(|var| var.name.as_str())
            .collect();
        if required.is_empty() {
            self.checks.push(Check::skip(
                names::AUTHORIZE_MISSING_CREDENTIAL,
                ABOUT,
                "no secret variable is required",
            ));
            return;
        }
        let expected = format!("a missing-credential error naming {}", required.join(" or "));
        let empty = bag.without_secrets(manifest);
        match self.plugin.authorize(&empty, target, HARNESS_NOW).await {
            Err(CallError { kind: CallErrorKind::Provider(failure), .. }) => {
                self.checks.push(Check::pass(
                    names::AUTHORIZE_MISSING_CREDENTIAL,
                    ABOUT,
                    expected,
                    format!("{:?}: {}", failure.code, failure.message),
                ));
            }
            Ok(request) => self.checks.push(Check::fail(
                names::AUTHORIZE_MISSING_CREDENTIAL,
                ABOUT,
                expected,
                format!("a request: {}", describe_request(bag, &request)),
                format!("return a `missing-credential` error naming the variable when a required secret is missing, from {}: {}", named(Named::Authorize), named(Named::RequireCredential)),
            )),
            Err(error) => {
                let (got, fix) = self.failure(&error, Some(bag));
                self.checks.push(Check::fail(
                    names::AUTHORIZE_MISSING_CREDENTIAL,
                    ABOUT,
                    expected,
                    got,
                    fix,
                ));
            }
        }
    }

    /// `interpret-health` on the standard canned responses.
    pub async fn interpret(&mut self) {
        let mut model_list_verdicts = Vec::new();
        for case in canned_responses() {
            let about = format!("`interpret-health` on {}", case.description);
            let expected = case.accept.join(" or ");
            match self.plugin.interpret_health(&Credentials::new(), &case.response).await {
                Ok(verdict) => {
                    let class = verdict_class(&verdict);
                    if case.model_list {
                        model_list_verdicts.push((case.name, class));
                    }
                    let got = format!("{class}: {}", one_line(verdict.message(), 160));
                    if case.accept.contains(&class) {
                        self.checks.push(Check::pass(case.name, about, expected, got));
                    } else {
                        self.checks.push(Check::fail(case.name, about, expected, got, case.fix));
                    }
                }
                Err(error) => {
                    let (got, fix) = self.failure(&error, None);
                    self.checks.push(Check::fail(case.name, about, expected, got, fix));
                }
            }
        }
        const ABOUT: &str = "a 200 in at least one common success shape is healthy";
        let expected = "healthy for at least one of: OpenAI-style, Gemini-style or Bedrock-style model list, OpenAI-style embeddings, OpenRouter-style key information";
        let got = model_list_verdicts
            .iter()
            .map(|(name, class)| format!("{name}: {class}"))
            .collect::<Vec<_>>()
            .join(", ");
        if model_list_verdicts.iter().any(|(_, class)| *class == "healthy") {
            self.checks.push(Check::pass(names::INTERPRET_HEALTHY_200, ABOUT, expected, got));
        } else if model_list_verdicts.is_empty() {
            self.checks.push(Check::skip(
                names::INTERPRET_HEALTHY_200,
                ABOUT,
                "no success response was interpreted",
            ));
        } else {
            self.checks.push(Check::fail(
                names::INTERPRET_HEALTHY_200,
                ABOUT,
                expected,
                got,
                format!("return a healthy verdict from {} for a 2xx whose body is what your probe expects ({} reads OpenAI- and Gemini-style model lists); if your probe's success shape is none of these, prove it in live mode with a fixture and tell the Platos maintainers so the harness learns the shape", named(Named::InterpretHealth), named(Named::StandardVerdict)),
            ));
        }
    }

    /// Contract 0.2.0: `read-usage` on canned answers (a count, nothing, or
    /// `unsupported`; never a trap; never usage for a failed request), and
    /// for a token-exchange manifest, `token-request` to an allowed host and
    /// `read-token` reading a refusal as a failure.
    pub async fn contract_additions(&mut self, given: &BTreeMap<String, String>) {
        const USAGE_ABOUT: &str = "`read-usage` reads JSON bodies and event streams without trapping, and finds no usage in a failed request";
        let request = HttpRequest {
            method: Method::Post,
            url: format!("https://{}/v1/chat/completions", sample_host(self.manifest())),
            headers: vec![("content-type".into(), "application/json".into())],
            body: Some(br#"{"model":"harness-model","max_tokens":16}"#.to_vec()),
        };
        let stream = HttpResponse {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            body: b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n".to_vec(),
        };
        let answers = [
            (
                "a 200 OpenAI-style answer",
                json_response(
                    200,
                    r#"{"model":"m","usage":{"prompt_tokens":3,"completion_tokens":1}}"#,
                ),
                true,
            ),
            (
                "a 200 Anthropic-style answer",
                json_response(
                    200,
                    r#"{"type":"message","model":"m","usage":{"input_tokens":3,"output_tokens":1}}"#,
                ),
                true,
            ),
            ("a 200 event stream", stream, true),
            ("a 200 empty body", json_response(200, ""), true),
            ("a 200 non-JSON body", json_response(200, "<html>"), true),
            (
                "a 401",
                json_response(
                    401,
                    r#"{"error":{"message":"invalid key","usage":{"prompt_tokens":3}}}"#,
                ),
                false,
            ),
            ("a 500", json_response(500, "upstream error"), false),
        ];
        let mut problems = Vec::new();
        let mut read = Vec::new();
        for (what, response, may_count) in answers {
            match self.plugin.read_usage(&request, &response).await {
                Ok(Some(usage)) if !may_count => problems.push(format!(
                    "{what}: usage {} in / {} out, but a failed request consumed nothing billable",
                    usage.input_tokens, usage.output_tokens
                )),
                Ok(Some(_)) => read.push(what),
                Ok(None) => {}
                Err(error) if is_unsupported(&error) => {
                    read.push("unsupported");
                    break;
                }
                Err(error) => {
                    let (got, _) = self.failure(&error, None);
                    problems.push(format!("{what}: {got}"));
                }
            }
        }
        let expected = "a count, nothing, or the `unsupported` error; no usage for a 4xx or 5xx";
        if problems.is_empty() {
            let got = if read.is_empty() {
                "no usage in any canned answer".to_owned()
            } else {
                format!("read: {}", read.join(", "))
            };
            self.checks.push(Check::pass(names::USAGE_SAFE, USAGE_ABOUT, expected, got));
        } else {
            self.checks.push(Check::fail(
                names::USAGE_SAFE,
                USAGE_ABOUT,
                expected,
                problems.join("; "),
                format!("return no usage (`none`) for answers without usage and for failed requests, and never trap on a body you did not expect, in {}; a provider that reports no usage returns the `unsupported` error", named(Named::ReadUsage)),
            ));
        }

        const REQUEST_ABOUT: &str = "`token-request` trades the secret at an allowed host";
        const READ_ABOUT: &str = "`read-token` reads a refused exchange as a failure, not a token";
        if !self.manifest().token_exchange {
            for (name, about) in
                [(names::TOKEN_REQUEST, REQUEST_ABOUT), (names::TOKEN_401, READ_ABOUT)]
            {
                self.checks.push(Check::skip(
                    name,
                    about,
                    "the manifest declares no token exchange",
                ));
            }
            return;
        }
        let bag = sample_bag(self.manifest(), given);
        let allowed = self.plugin.allowed_hosts(&bag.credentials).describe();
        match self.plugin.token_request(&bag.credentials, HARNESS_NOW).await {
            Ok(exchange) => self.checks.push(Check::pass(
                names::TOKEN_REQUEST,
                REQUEST_ABOUT,
                format!("a request to one of: {allowed}"),
                describe_request(&bag, &exchange),
            )),
            Err(error) => {
                let (got, fix) = self.failure(&error, Some(&bag));
                self.checks.push(Check::fail(
                    names::TOKEN_REQUEST,
                    REQUEST_ABOUT,
                    format!("a request to one of: {allowed}"),
                    got,
                    fix,
                ));
            }
        }
        let refused =
            json_response(401, r#"{"error":"invalid_client","error_description":"bad secret"}"#);
        let expected = "a failure whose verdict is invalid-credential";
        match self.plugin.read_token(&bag.credentials, &refused, HARNESS_NOW).await {
            Ok(Err(verdict)) if verdict_class(&verdict) == "invalid-credential" => self.checks.push(Check::pass(
                names::TOKEN_401,
                READ_ABOUT,
                expected,
                format!("invalid-credential: {}", one_line(verdict.message(), 160)),
            )),
            Ok(Err(verdict)) => self.checks.push(Check::fail(
                names::TOKEN_401,
                READ_ABOUT,
                expected,
                format!("{}: {}", verdict_class(&verdict), one_line(verdict.message(), 160)),
                format!("a 400 or 401 from the token endpoint means the secret is wrong: return a failure with an invalid-credential verdict from {}", named(Named::ReadToken)),
            )),
            Ok(Ok(_)) => self.checks.push(Check::fail(
                names::TOKEN_401,
                READ_ABOUT,
                expected,
                "a token",
                format!("check the status before reading a token in {}: a 401 carries none", named(Named::ReadToken)),
            )),
            Err(error) => {
                let (got, fix) = self.failure(&error, Some(&bag));
                self.checks.push(Check::fail(names::TOKEN_401, READ_ABOUT, expected, got, fix));
            }
        }
    }

    /// The summary of every limit any call hit.
    pub fn limits_check(&mut self) {
        const ABOUT: &str =
            "every call stays within the runtime's memory, CPU, time and output limits";
        let limits = self.limits;
        let expected = format!(
            "memory ≤ {} MiB, CPU ≤ {:?}, wall clock ≤ {:?}, output ≤ {} KiB per call",
            limits.memory_bytes >> 20,
            limits.cpu_time,
            limits.wall_time,
            limits.output_bytes >> 10
        );
        if self.hits.is_empty() {
            self.checks.push(Check::pass(names::LIMITS, ABOUT, expected, "no call hit a limit"));
        } else {
            // One entry per distinct limit hit, with how many calls hit it.
            let mut distinct: Vec<(&str, usize)> = Vec::new();
            for hit in &self.hits {
                match distinct.iter_mut().find(|(seen, _)| seen == hit) {
                    Some((_, count)) => *count += 1,
                    None => distinct.push((hit, 1)),
                }
            }
            let got =
                distinct
                    .iter()
                    .map(|(hit, count)| {
                        if *count == 1 { hit.to_string() } else { format!("{hit} ({count} calls)") }
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
            self.checks.push(Check::fail(
                names::LIMITS,
                ABOUT,
                expected,
                got,
                "see the failed call's own check for what to change",
            ));
        }
    }
}

fn shape_fix(shape: &AuthShape) -> String {
    let authorize = named(Named::Authorize);
    match shape {
        AuthShape::Bearer { env_var } => format!(
            "set exactly one `Authorization: Bearer <{env_var}>` header in {authorize}, or change `auth` in the manifest to what the provider really uses"
        ),
        AuthShape::Header { header, env_var } => format!(
            "set exactly one `{header}` header to the value of {env_var}, verbatim, in {authorize}, or change `auth` in the manifest"
        ),
        AuthShape::Query { param, env_var } => format!(
            "append `{param}=<{env_var}>` (percent-encoded) to the URL once in {authorize}, or change `auth` in the manifest"
        ),
        AuthShape::Custom { .. } => format!("return the signed request from {authorize}"),
    }
}

fn one_line(text: &str, max: usize) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > max {
        format!("{}…", line.chars().take(max).collect::<String>())
    } else {
        line
    }
}

/// One canned response and the verdict classes accepted for it.
struct Canned {
    name: &'static str,
    description: &'static str,
    response: HttpResponse,
    accept: &'static [&'static str],
    model_list: bool,
    fix: String,
}

fn json_response(status: u16, body: &str) -> HttpResponse {
    HttpResponse {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.as_bytes().to_vec(),
    }
}

/// The size of the large-body case.
pub(crate) const LARGE_BODY_BYTES: usize = 5 << 20;

fn canned_responses() -> Vec<Canned> {
    let status_fix = format!(
        "map statuses the standard way in {}: 401/403 → invalid-credential, 402/429 → quota-limited, 5xx → degraded, 0 → unreachable (as {} does); read provider-specific bodies only to refine the message",
        named(Named::InterpretHealth),
        named(Named::StandardVerdict)
    );
    let body_fix = format!(
        "a 2xx whose body is not what the probe expects is degraded (or unreachable): parse with {} and fall back, never unwrap",
        named(Named::ParseJson)
    );
    let large = {
        let head =
            r#"{"object":"list","data":[{"id":"harness-model-a","object":"model"}],"padding":""#;
        let tail = r#""}"#;
        let mut body = String::with_capacity(LARGE_BODY_BYTES);
        body.push_str(head);
        body.push_str(&"x".repeat(LARGE_BODY_BYTES - head.len() - tail.len()));
        body.push_str(tail);
        json_response(200, &body)
    };
    vec![
        Canned {
            name: names::INTERPRET_MODELS_OPENAI,
            description: "a 200 with an OpenAI-style model list {\"data\":[{\"id\":..}]}",
            response: json_response(
                200,
                r#"{"object":"list","data":[{"id":"harness-model-a","object":"model"},{"id":"harness-model-b","object":"model"}]}"#,
            ),
            accept: &["healthy", "degraded"],
            model_list: true,
            fix: "a 2xx model list is healthy (or degraded when the plugin's API uses another shape)".into(),
        },
        Canned {
            name: names::INTERPRET_MODELS_GEMINI,
            description: "a 200 with a Gemini-style model list {\"models\":[{\"name\":..}]}",
            response: json_response(
                200,
                r#"{"models":[{"name":"models/harness-model-a","displayName":"A"},{"name":"models/harness-model-b","displayName":"B"}]}"#,
            ),
            accept: &["healthy", "degraded"],
            model_list: true,
            fix: "a 2xx model list is healthy (or degraded when the plugin's API uses another shape)".into(),
        },
        Canned {
            name: names::INTERPRET_MODELS_BEDROCK,
            description: "a 200 with a Bedrock-style model list {\"modelSummaries\":[{\"modelId\":..}]}",
            response: json_response(
                200,
                r#"{"modelSummaries":[{"modelId":"harness.model-a-v1:0","modelName":"A"},{"modelId":"harness.model-b-v1:0","modelName":"B"}]}"#,
            ),
            accept: &["healthy", "degraded"],
            model_list: true,
            fix: "a 2xx model list is healthy (or degraded when the plugin's API uses another shape)".into(),
        },
        Canned {
            name: names::INTERPRET_EMBEDDINGS,
            description: "a 200 with an OpenAI-style embeddings response {\"data\":[{\"embedding\":[..]}]}",
            response: json_response(
                200,
                r#"{"object":"list","data":[{"object":"embedding","embedding":[0.0123,-0.0456,0.0789],"index":0}],"model":"harness-embed","usage":{"prompt_tokens":1,"total_tokens":1}}"#,
            ),
            accept: &["healthy", "degraded"],
            model_list: true,
            fix: "a 2xx answer to an embeddings probe is healthy (or degraded when the plugin's probe is something else)".into(),
        },
        Canned {
            name: names::INTERPRET_KEY_INFO,
            description: "a 200 with an OpenRouter-style key-information answer {\"data\":{\"label\":..,\"limit\":..,\"usage\":..}}",
            response: json_response(
                200,
                r#"{"data":{"label":"harness-key","limit":10,"limit_remaining":7.5,"usage":2.5,"is_free_tier":false}}"#,
            ),
            accept: &["healthy", "degraded"],
            model_list: true,
            fix: "a 2xx answer to a key-information probe is healthy (or degraded when the plugin's probe is something else)".into(),
        },
        Canned {
            name: names::INTERPRET_401,
            description: "a 401",
            response: json_response(
                401,
                r#"{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}"#,
            ),
            accept: &["invalid-credential"],
            model_list: false,
            fix: status_fix.clone(),
        },
        Canned {
            name: names::INTERPRET_403,
            description: "a 403",
            response: json_response(403, r#"{"error":{"message":"forbidden"}}"#),
            accept: &["invalid-credential"],
            model_list: false,
            fix: status_fix.clone(),
        },
        Canned {
            name: names::INTERPRET_429,
            description: "a 429",
            response: json_response(
                429,
                r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota"}}"#,
            ),
            accept: &["quota-limited"],
            model_list: false,
            fix: status_fix.clone(),
        },
        Canned {
            name: names::INTERPRET_500,
            description: "a 500",
            response: json_response(500, r#"{"error":{"message":"internal server error"}}"#),
            accept: &["degraded"],
            model_list: false,
            fix: status_fix.clone(),
        },
        Canned {
            name: names::INTERPRET_EMPTY_BODY,
            description: "a 200 with an empty body",
            response: HttpResponse { status: 200, headers: vec![], body: vec![] },
            accept: &["degraded", "unreachable"],
            model_list: false,
            fix: body_fix.clone(),
        },
        Canned {
            name: names::INTERPRET_NON_JSON,
            description: "a 200 with a body that is not JSON",
            response: HttpResponse {
                status: 200,
                headers: vec![("content-type".into(), "text/html".into())],
                body: b"<html><body>502 Bad Gateway from a proxy</body></html>".to_vec(),
            },
            accept: &["degraded", "unreachable"],
            model_list: false,
            fix: body_fix.clone(),
        },
        Canned {
            name: names::INTERPRET_LARGE_BODY,
            description: "a 200 with a 5 MB body",
            response: large,
            accept: &["healthy", "degraded", "unreachable"],
            model_list: false,
            fix: body_fix.clone(),
        },
        Canned {
            name: names::INTERPRET_UNREACHABLE,
            description: "status 0 (the host could not connect)",
            response: HttpResponse {
                status: 0,
                headers: vec![],
                body: b"connection refused (synthetic, from the harness)".to_vec(),
            },
            accept: &["unreachable"],
            model_list: false,
            fix: status_fix.clone(),
        },
    ]
}

/// Whether `error` says the function is not offered: the plugin's
/// `unsupported` error, or a function its contract version does not have.
fn is_unsupported(error: &CallError) -> bool {
    match &error.kind {
        CallErrorKind::Provider(failure) => {
            failure.code == crate::provider::ProviderErrorCode::Unsupported
        }
        CallErrorKind::Unsupported(_) => true,
        _ => false,
    }
}

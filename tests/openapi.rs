//! The OpenAPI document against the server it describes: every documented
//! operation's examples run against a real server on loopback (the status
//! must be a documented one and the answer must validate against the
//! documented schema), every example validates against its own schema, the
//! route table and the document agree both ways, and the path and body
//! rules in the document accept exactly what the server's rules accept.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use platos_host::api::{Access, SCOPE_PREFIX, routes};
use serde_json::{Value, json};
use support::{Running, mock_upstream};

async fn start() -> Running {
    Running::start("openapi-test-plugin-cache", |_| ()).await
}

/// The JSON Schema 2020-12 keywords [`errors`] checks. Annotations are
/// listed with no check; any other keyword fails the test, so a constraint
/// the document adds is never skipped silently.
const ANNOTATIONS: &[&str] = &[
    "description",
    "title",
    "example",
    "examples",
    "default",
    "writeOnly",
    "readOnly",
    "format",
    "deprecated",
];

/// Where `value` breaks `schema`, whose `$ref`s point into `document`'s
/// components (OpenAPI 3.1 schemas are JSON Schema 2020-12); empty when it
/// validates.
fn errors(document: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let mut out = Vec::new();
    let Some(schema) = schema.as_object() else {
        match schema {
            Value::Bool(true) => {}
            other => out.push(format!("{at}: schema {other} is not an object")),
        }
        return out;
    };
    let fail = |out: &mut Vec<String>, what: String| out.push(format!("{at}: {what}"));
    for (keyword, rule) in schema {
        match keyword.as_str() {
            "$ref" => {
                let name = rule.as_str().unwrap().strip_prefix("#/components/schemas/").unwrap();
                let target = &document["components"]["schemas"][name];
                assert!(target.is_object(), "{at}: {name} is not in the components");
                out.extend(errors(document, target, value, at));
            }
            "type" => {
                let types: Vec<&str> = match rule {
                    Value::String(one) => vec![one.as_str()],
                    many => many.as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect(),
                };
                let fits = |kind: &str| match kind {
                    "null" => value.is_null(),
                    "boolean" => value.is_boolean(),
                    "object" => value.is_object(),
                    "array" => value.is_array(),
                    "string" => value.is_string(),
                    "number" => value.is_number(),
                    "integer" => value.is_i64() || value.is_u64(),
                    other => panic!("{at}: unknown type {other}"),
                };
                if !types.iter().any(|kind| fits(kind)) {
                    fail(&mut out, format!("{value} is not of type {rule}"));
                }
            }
            "enum" if !rule.as_array().unwrap().contains(value) => {
                fail(&mut out, format!("{value} is not one of {rule}"));
            }
            "const" if rule != value => fail(&mut out, format!("{value} is not {rule}")),
            "enum" | "const" => {}
            "properties" => {
                for (name, property) in rule.as_object().unwrap() {
                    if let Some(inner) = value.get(name).filter(|_| value.is_object()) {
                        out.extend(errors(document, property, inner, &format!("{at}.{name}")));
                    }
                }
            }
            "required" => {
                for name in rule.as_array().unwrap() {
                    if value.is_object() && value.get(name.as_str().unwrap()).is_none() {
                        fail(&mut out, format!("{name} is missing"));
                    }
                }
            }
            "additionalProperties" => {
                let known = schema.get("properties").and_then(Value::as_object);
                for (name, inner) in value.as_object().into_iter().flatten() {
                    if known.is_some_and(|known| known.contains_key(name)) {
                        continue;
                    }
                    if rule == &Value::Bool(false) {
                        fail(&mut out, format!("{name} is not an allowed property"));
                    } else {
                        out.extend(errors(document, rule, inner, &format!("{at}.{name}")));
                    }
                }
            }
            "propertyNames" => {
                for name in value.as_object().into_iter().flatten().map(|(name, _)| name) {
                    out.extend(errors(document, rule, &json!(name), &format!("{at} key {name:?}")));
                }
            }
            "minProperties" => {
                let count = value.as_object().map_or(usize::MAX, |object| object.len());
                if count < rule.as_u64().unwrap() as usize {
                    fail(&mut out, format!("fewer than {rule} properties"));
                }
            }
            "items" => {
                let skip = schema.get("prefixItems").and_then(Value::as_array).map_or(0, Vec::len);
                for (index, item) in value.as_array().into_iter().flatten().enumerate().skip(skip) {
                    out.extend(errors(document, rule, item, &format!("{at}[{index}]")));
                }
            }
            "prefixItems" => {
                for (index, (item, rule)) in
                    value.as_array().into_iter().flatten().zip(rule.as_array().unwrap()).enumerate()
                {
                    out.extend(errors(document, rule, item, &format!("{at}[{index}]")));
                }
            }
            "minItems" | "maxItems" => {
                if let Some(items) = value.as_array() {
                    let bound = rule.as_u64().unwrap() as usize;
                    let bad = if keyword == "minItems" {
                        items.len() < bound
                    } else {
                        items.len() > bound
                    };
                    if bad {
                        fail(&mut out, format!("{} items breaks {keyword} {bound}", items.len()));
                    }
                }
            }
            "minLength" | "maxLength" => {
                if let Some(text) = value.as_str() {
                    let (length, bound) = (text.chars().count(), rule.as_u64().unwrap() as usize);
                    let bad = if keyword == "minLength" { length < bound } else { length > bound };
                    if bad {
                        fail(&mut out, format!("{length} characters breaks {keyword} {bound}"));
                    }
                }
            }
            "pattern" => {
                if let Some(text) = value.as_str() {
                    let pattern = regex::Regex::new(rule.as_str().unwrap()).unwrap();
                    if !pattern.is_match(text) {
                        fail(&mut out, format!("{text:?} does not match {rule}"));
                    }
                }
            }
            "minimum" | "maximum" => {
                if let Some(number) = value.as_f64() {
                    let bound = rule.as_f64().unwrap();
                    let bad = if keyword == "minimum" { number < bound } else { number > bound };
                    if bad {
                        fail(&mut out, format!("{number} breaks {keyword} {bound}"));
                    }
                }
            }
            "allOf" | "anyOf" | "oneOf" => {
                let matching = rule
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|branch| errors(document, branch, value, at))
                    .filter(Vec::is_empty)
                    .count();
                let count = rule.as_array().unwrap().len();
                let fits = match keyword.as_str() {
                    "allOf" => matching == count,
                    "anyOf" => matching >= 1,
                    _ => matching == 1,
                };
                if !fits {
                    fail(
                        &mut out,
                        format!("{value} matches {matching} of the {count} {keyword} branches"),
                    );
                }
            }
            annotation if ANNOTATIONS.contains(&annotation) => {}
            other => panic!("{at}: the test's validator does not know the keyword {other}"),
        }
    }
    out
}

/// Panics with every error when `instance` does not validate.
fn assert_valid(document: &Value, schema: &Value, instance: &Value, what: &str) {
    let errors = errors(document, schema, instance, "$");
    assert!(
        errors.is_empty(),
        "{what} does not validate against its schema: {errors:#?}\n{instance}"
    );
}

#[test]
fn the_validator_catches_what_it_checks() {
    let document = json!({ "components": { "schemas": { "Named": {
        "type": "object", "required": ["name"], "additionalProperties": false,
        "properties": { "name": { "type": "string", "pattern": "^[A-Z]+$", "maxLength": 3 } }
    } } } });
    let named = json!({ "$ref": "#/components/schemas/Named" });
    assert!(errors(&document, &named, &json!({ "name": "ABC" }), "$").is_empty());
    for bad in [
        json!({}),
        json!({ "name": "abc" }),
        json!({ "name": "ABCD" }),
        json!({ "name": 1 }),
        json!({ "name": "AB", "extra": true }),
        json!([]),
    ] {
        assert!(!errors(&document, &named, &bad, "$").is_empty(), "{bad}");
    }
    let nullable = json!({ "oneOf": [{ "type": "null" }, { "type": "integer", "minimum": 0 }] });
    assert!(errors(&document, &nullable, &json!(null), "$").is_empty());
    assert!(!errors(&document, &nullable, &json!(-1), "$").is_empty());
    assert!(!errors(&document, &nullable, &json!(1.5), "$").is_empty());
}

/// One documented operation.
struct Operation {
    method: String,
    path: String,
    spec: Value,
}

fn operations(document: &Value) -> Vec<Operation> {
    let mut out = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, spec) in item.as_object().unwrap() {
            out.push(Operation {
                method: method.to_ascii_uppercase(),
                path: path.clone(),
                spec: spec.clone(),
            });
        }
    }
    out
}

/// The order the examples run in: what others need first (a token, a key,
/// a lease, a round), deletions last.
fn phase(operation: &Operation) -> u8 {
    match (operation.method.as_str(), operation.path.as_str()) {
        ("POST", "/v1/tokens") | ("PUT", _) => 0,
        ("POST", path) if path.ends_with("/resolve") || path == "/v1/health/rounds" => 1,
        ("DELETE", _) => 3,
        _ => 2,
    }
}

/// The documented 2xx answers of an operation: status, content type and
/// the content object.
fn success_answers(operation: &Operation) -> Vec<(u16, String, Value)> {
    let responses = operation.spec["responses"].as_object().unwrap();
    responses
        .iter()
        .filter(|(status, _)| status.starts_with('2'))
        .flat_map(|(status, response)| {
            let content = response["content"].as_object().cloned().unwrap_or_default();
            content
                .into_iter()
                .map(|(kind, content)| (status.parse::<u16>().unwrap(), kind, content))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Values only a live server can give: a lease, a token id, a round id.
#[derive(Default)]
struct Live {
    lease: Option<String>,
    token_id: Option<String>,
    round_id: Option<String>,
}

/// The request path of the operation's example: its path parameters'
/// examples (the live ids where the example's cannot exist yet) and its
/// query parameters' examples.
fn example_path(document: &Value, operation: &Operation, live: &Live) -> String {
    let mut path = operation.path.clone();
    let mut query = Vec::new();
    for parameter in operation.spec["parameters"].as_array().into_iter().flatten() {
        let name = parameter["name"].as_str().unwrap();
        let example = &parameter["example"];
        assert!(
            !example.is_null(),
            "{} {}: parameter {name} has no example",
            operation.method,
            operation.path
        );
        assert_valid(document, &parameter["schema"], example, &format!("parameter {name}"));
        let text = match example {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        match parameter["in"].as_str() {
            Some("path") => {
                let value = match name {
                    "lease" => live.lease.clone().expect("a resolve ran first"),
                    "id" if operation.path.starts_with("/v1/tokens/") => {
                        live.token_id.clone().expect("a token was created first")
                    }
                    "id" => live.round_id.clone().expect("a round was started first"),
                    _ => text,
                };
                path = path.replace(&format!("{{{name}}}"), &value);
            }
            Some("query") => query.push(format!("{name}={text}")),
            other => panic!("parameter {name} in {other:?}"),
        }
    }
    assert!(!path.contains('{'), "{} {}: a path parameter is undocumented", operation.method, path);
    if query.is_empty() { path } else { format!("{path}?{}", query.join("&")) }
}

#[tokio::test]
async fn every_documented_example_runs_against_the_server() {
    let (upstream, _mock) = mock_upstream().await;
    let host = start().await;
    let client = &host.client;
    let (status, document) = client.call("GET", "/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(document["openapi"], "3.1.0");
    // The scope of the examples routes its provider's probes to the mock,
    // and lets a forward by lease reach it.
    for name in ["OPENAI_BASE_URL", "OPENAI_API_BASE"] {
        let (status, body) = client
            .call(
                "PUT",
                &format!("/v1/scopes/acme/shop/prod/env/{name}"),
                Some(&host.operator),
                Some(&json!({ "value": upstream })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    let mut operations = operations(&document);
    operations.sort_by_key(phase);
    assert!(operations.len() >= 30, "{} operations", operations.len());
    let mut live = Live::default();
    for operation in &operations {
        let what = format!("{} {}", operation.method, operation.path);
        let path = example_path(&document, operation, &live);
        let body = operation.spec.get("requestBody").map(|request| {
            let content = &request["content"]["application/json"];
            let example = &content["example"];
            assert!(!example.is_null(), "{what}: the request body has no example");
            assert_valid(
                &document,
                &content["schema"],
                example,
                &format!("{what}'s request example"),
            );
            // The forward example goes to the public API; here the mock
            // stands for it (the scope's base URL lets the provider reach it).
            let example = example.to_string();
            if operation.path.ends_with("/forward") {
                example.replace("https://api.openai.com/v1", &upstream)
            } else {
                example
            }
        });
        let answers = success_answers(operation);
        assert!(!answers.is_empty(), "{what}: no documented success answer");
        for (status, _, content) in &answers {
            assert!(!content["example"].is_null(), "{what}: the {status} answer has no example");
            assert_valid(
                &document,
                &content["schema"],
                &content["example"],
                &format!("{what}'s {status} example"),
            );
        }

        let method = reqwest::Method::from_bytes(operation.method.as_bytes()).unwrap();
        let mut request = client
            .http
            .request(method, format!("{}{path}", client.base))
            .bearer_auth(&host.operator);
        if let Some(body) = body {
            request = request.header("content-type", "application/json").body(body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response.text().await.unwrap();
        let (_, kind, content) = answers
            .iter()
            .find(|(documented, kind, _)| {
                *documented == status && content_type.split(';').next() == Some(kind.as_str())
            })
            .unwrap_or_else(|| {
                panic!("{what} ({path}) answered {status} {content_type}, which is not documented: {text}")
            });
        let answer: Value = if kind == "application/json" {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{what}: not JSON: {text}"))
        } else {
            Value::String(text)
        };
        assert_valid(&document, &content["schema"], &answer, &format!("{what}'s answer"));

        if operation.path.ends_with("/resolve") {
            live.lease = answer["lease"]["id"].as_str().map(str::to_owned);
        } else if operation.method == "POST" && operation.path == "/v1/tokens" {
            live.token_id = answer["info"]["id"].as_str().map(str::to_owned);
        } else if operation.method == "POST" && operation.path == "/v1/health/rounds" {
            live.round_id = Some(answer["round"]["id"].to_string());
        }
    }
    host.server.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[test]
fn the_document_and_the_route_table_agree() {
    let document = platos_host::api::openapi::document_json();
    let documented: BTreeSet<(String, String)> = operations(&document)
        .into_iter()
        .map(|operation| (operation.method, operation.path))
        .collect();
    let routed: BTreeSet<(String, String)> =
        routes().into_iter().map(|route| (route.method.to_owned(), route.path)).collect();
    assert_eq!(documented, routed);
    assert_eq!(routes().len(), routed.len(), "a route is in the table twice");

    let mut ids = BTreeSet::new();
    for route in routes() {
        let operation = &document["paths"][&route.path][route.method.to_ascii_lowercase()];
        let what = format!("{} {}", route.method, route.path);
        assert!(ids.insert(operation["operationId"].to_string()), "{what}: operationId repeats");
        assert!(operation["summary"].is_string() && operation["description"].is_string(), "{what}");
        assert_eq!(route.access.is_scoped(), route.path.starts_with(SCOPE_PREFIX), "{what}");
        let security = operation["security"].as_array().unwrap();
        assert_eq!(security.is_empty(), route.access == Access::Public, "{what}");
        let codes: Vec<&str> = operation["responses"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(status, _)| !status.starts_with('2'))
            .flat_map(|(_, response)| {
                response["content"]["application/json"]["schema"]["properties"]["error"]
                    ["properties"]["code"]["enum"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|code| code.as_str().unwrap())
            })
            .collect();
        if route.access != Access::Public {
            assert!(codes.contains(&"missing_token") && codes.contains(&"invalid_token"), "{what}");
        }
        if route.access == Access::ScopeAdmin {
            assert!(codes.contains(&"admin_only"), "{what}");
        }
        if route.access.is_scoped() {
            assert!(codes.contains(&"scope_not_found"), "{what}");
        }
        if operation.get("requestBody").is_some() {
            assert!(codes.contains(&"unsupported_media_type"), "{what}");
        }
        for name in route.path.split('{').skip(1).map(|rest| rest.split('}').next().unwrap()) {
            let count = operation["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|param| param["name"] == name && param["in"] == "path")
                .count();
            assert_eq!(count, 1, "{what}: path parameter {name}");
        }
    }
    // Every component is a named type of the API, not a primitive behind a
    // type alias (`UnixMillis` needs `#[schema(value_type = u64)]`).
    for name in document["components"]["schemas"].as_object().unwrap().keys() {
        assert!(name.starts_with(|c: char| c.is_ascii_uppercase()), "component {name}");
    }
    // Every error code is in the Error schema, and every code a route
    // documents is a known one with its own status.
    let all: Vec<&str> = document["components"]["schemas"]["Error"]["properties"]["error"]
        ["properties"]["code"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|code| code.as_str().unwrap())
        .collect();
    for (code, status, _) in platos_host::api::error::ERROR_CODES {
        assert!(all.contains(code), "{code}");
        for operation in operations(&document) {
            let responses = operation.spec["responses"].as_object().unwrap();
            for (documented, response) in responses {
                let codes = &response["content"]["application/json"]["schema"]["properties"]["error"]
                    ["properties"]["code"]["enum"];
                if codes.as_array().is_some_and(|codes| codes.iter().any(|known| known == code)) {
                    assert_eq!(documented, &status.to_string(), "{code}");
                }
            }
        }
    }
}

/// The schema of the parameter `name` of `method path`.
fn parameter_schema(document: &Value, method: &str, path: &str, name: &str) -> Value {
    document["paths"][path][method]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|param| param["name"] == name)
        .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))["schema"]
        .clone()
}

/// The schema of the body property `name` of `method path`.
fn body_property(document: &Value, method: &str, path: &str, name: &str) -> Value {
    let schema =
        &document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"];
    let reference = schema["$ref"].as_str().unwrap().rsplit('/').next().unwrap();
    document["components"]["schemas"][reference]["properties"][name].clone()
}

#[test]
fn the_documented_rules_accept_what_the_server_accepts() {
    use platos_host::policy::names::{MAX_ENV_VAR_LEN, MAX_SLUG_LEN};
    use platos_host::scope::{MAX_SCOPE_ID_LEN, Scope};
    let document = platos_host::api::openapi::document_json();
    let env = format!("{SCOPE_PREFIX}/env/{{name}}");
    let key = format!("{SCOPE_PREFIX}/providers/{{provider}}/keys/{{key}}");
    let check = |schema: &Value, samples: &[String], rule: &dyn Fn(&str) -> bool, what: &str| {
        for sample in samples {
            assert_eq!(
                errors(&document, schema, &json!(sample), "$").is_empty(),
                rule(sample),
                "{what}: the document and the server disagree on {sample:?}"
            );
        }
    };
    let strings = |extra: &[&str], longest: usize| {
        let mut samples: Vec<String> = [
            "",
            "a",
            "A",
            "0",
            "_",
            "-",
            ".",
            "OPENAI_API_KEY",
            "openai",
            "azure-openai",
            "x9-",
            "_KEY",
            "2KEY",
            "open_ai",
            "OPENAI-KEY",
            "KEY ",
            " KEY",
            "ópen",
            "acme.shop",
            "a/b",
            "a\nb",
            "a\u{7f}b",
            "\t",
            "checkout agent",
            "  ",
            "日本",
        ]
        .iter()
        .chain(extra)
        .map(|text| (*text).to_owned())
        .collect();
        for letter in ["a", "A"] {
            samples.push(letter.repeat(longest));
            samples.push(letter.repeat(longest + 1));
        }
        samples
    };

    let scope_id = parameter_schema(&document, "get", &format!("{SCOPE_PREFIX}/env"), "project");
    check(
        &scope_id,
        &strings(&[], MAX_SCOPE_ID_LEN),
        &|id| Scope::new(id, "p", "e").is_ok(),
        "scope id",
    );
    let names = strings(&[], MAX_ENV_VAR_LEN);
    let name_rule = |name: &str| platos_host::policy::names::is_valid_env_var_name(name);
    check(&parameter_schema(&document, "put", &env, "name"), &names, &name_rule, "{name}");
    check(&parameter_schema(&document, "patch", &key, "key"), &names, &name_rule, "{key}");
    check(
        &parameter_schema(&document, "patch", &key, "provider"),
        &strings(&[], MAX_SLUG_LEN),
        &platos_host::policy::names::is_valid_slug,
        "{provider}",
    );
    let labels =
        strings(&["a\u{85}b", "ok\u{200b}", " padded "], platos_host::api::auth::MAX_LABEL_LEN);
    check(
        &body_property(&document, "patch", &key, "label"),
        &labels,
        &platos_host::api::auth::valid_label,
        "a key label",
    );
    check(
        &body_property(&document, "post", "/v1/tokens", "label"),
        &labels,
        &platos_host::api::auth::valid_label,
        "a token label",
    );
    let long = "a".repeat(MAX_SCOPE_ID_LEN);
    let scopes = strings(
        &[
            "acme/shop/prod",
            "acme/shop",
            "acme/shop/prod/x",
            "acme//prod",
            "a.b/c_d/e-f",
            &format!("{long}/{long}/{long}"),
            &format!("{long}a/b/c"),
        ],
        0,
    );
    check(
        &body_property(&document, "post", "/v1/tokens", "scope"),
        &scopes,
        &|scope| scope.parse::<Scope>().is_ok(),
        "a token's scope",
    );
    // A token's pins: provider slugs to key ids, as `check_pins` takes them.
    use platos_host::api::auth::{Pins, TokenKind, check_pins};
    let pins_schema = body_property(&document, "post", "/v1/tokens", "pins");
    let pin_cases = strings(&[], MAX_SLUG_LEN)
        .into_iter()
        .map(|slug| (slug, "OPENAI_API_KEY".to_owned()))
        .chain(names.iter().map(|name| ("openai".to_owned(), name.clone())));
    for (provider, key) in pin_cases {
        let pins = Pins::from([(provider, key)]);
        assert_eq!(
            errors(&document, &pins_schema, &json!(pins), "$").is_empty(),
            check_pins(TokenKind::Agent, &pins).is_ok(),
            "pins: the document and the server disagree on {pins:?}"
        );
    }
}

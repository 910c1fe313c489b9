//! Where secrets may and may not appear in an authorized request: the
//! declared auth shape's one place, and nowhere else.

use url::Url;

use super::samples::{SampleBag, auth_var};
use crate::provider::{AuthShape, HttpRequest, Manifest};

/// What the declared shape expects, in words (secret values as `<NAME>`).
pub(crate) fn expected_shape(shape: &AuthShape) -> String {
    match shape {
        AuthShape::Bearer { env_var } => {
            format!("exactly one header `Authorization: Bearer <{env_var}>`")
        }
        AuthShape::Header { header, env_var } => {
            format!("exactly one header `{header}: <{env_var}>`")
        }
        AuthShape::Query { param, env_var } => {
            format!("exactly one query parameter `{param}=<{env_var}>` in the URL")
        }
        AuthShape::Custom { description } => format!("custom auth ({description}): a request"),
    }
}

/// Whether `request` carries the declared shape; the error says what is
/// there instead (redacted).
pub(crate) fn check_shape(
    manifest: &Manifest,
    bag: &SampleBag,
    request: &HttpRequest,
) -> Result<(), String> {
    let secret_of = |var: &str| bag.secret(var).unwrap_or_default().to_owned();
    match &manifest.auth {
        AuthShape::Bearer { env_var } => {
            let wanted = format!("Bearer {}", secret_of(env_var));
            exactly_one_header(bag, request, "authorization", &wanted)
        }
        AuthShape::Header { header, env_var } => {
            exactly_one_header(bag, request, header, &secret_of(env_var))
        }
        AuthShape::Query { param, env_var } => {
            let secret = secret_of(env_var);
            let url = Url::parse(&request.url)
                .map_err(|_| format!("the URL {:?} does not parse", bag.redact(&request.url)))?;
            let values: Vec<String> =
                url.query_pairs().filter(|(key, _)| key == param).map(|(_, v)| v.into()).collect();
            match values.as_slice() {
                [value] if *value == secret => Ok(()),
                [] => Err(format!("no query parameter `{param}` in {}", bag.redact(&request.url))),
                [value] => Err(format!("`{param}={}`", bag.redact(value))),
                many => Err(format!("{} query parameters `{param}`", many.len())),
            }
        }
        AuthShape::Custom { .. } => Ok(()),
    }
}

fn exactly_one_header(
    bag: &SampleBag,
    request: &HttpRequest,
    name: &str,
    wanted: &str,
) -> Result<(), String> {
    let values: Vec<&str> = request.header_values(name).collect();
    match values.as_slice() {
        [value] if *value == wanted => Ok(()),
        [] => {
            let names: Vec<&str> = request.headers.iter().map(|(name, _)| name.as_str()).collect();
            Err(format!("no `{name}` header (headers: {})", list_or_none(&names)))
        }
        [value] => Err(format!("`{name}: {}`", bag.redact(value))),
        many => Err(format!("{} `{name}` headers", many.len())),
    }
}

fn list_or_none(items: &[&str]) -> String {
    if items.is_empty() { "none".to_owned() } else { items.join(", ") }
}

/// Every place a secret of `bag` appears in `request` outside the one place
/// the declared shape puts it, as `NAME in <place>`. For a custom shape every
/// verbatim appearance counts.
pub(crate) fn leaks(manifest: &Manifest, bag: &SampleBag, request: &HttpRequest) -> Vec<String> {
    let declared = auth_var(&manifest.auth);
    let mut found = Vec::new();
    for (name, secret) in &bag.secrets {
        if secret.len() < 4 {
            continue;
        }
        let is_auth_var = declared == Some(name.as_str());
        for (header, value) in &request.headers {
            if !value.contains(secret.as_str()) {
                continue;
            }
            let allowed = is_auth_var
                && match &manifest.auth {
                    AuthShape::Bearer { .. } => {
                        header.eq_ignore_ascii_case("authorization")
                            && *value == format!("Bearer {secret}")
                    }
                    AuthShape::Header { header: declared_header, .. } => {
                        header.eq_ignore_ascii_case(declared_header) && value == secret
                    }
                    _ => false,
                }
                || custom_header_allowed(&manifest.auth, header);
            if !allowed {
                found.push(format!("{name} in header `{header}`"));
            }
        }
        let allowed_param = match &manifest.auth {
            AuthShape::Query { param, .. } if is_auth_var => Some(param.as_str()),
            _ => None,
        };
        for place in url_places(&request.url, secret, allowed_param) {
            found.push(format!("{name} in {place}"));
        }
        if let Some(body) = &request.body
            && contains_bytes(body, secret.as_bytes())
        {
            found.push(format!("{name} in the body"));
        }
    }
    // A custom shape signs: at least one secret (the signing key) must never
    // go on the wire, or the "signature" is the secrets in the clear.
    if let AuthShape::Custom { .. } = &manifest.auth {
        let long: Vec<&(String, String)> =
            bag.secrets.iter().filter(|(_, secret)| secret.len() >= 4).collect();
        let on_the_wire = |secret: &str| {
            request.headers.iter().any(|(_, value)| value.contains(secret))
                || request.url.contains(secret)
                || request
                    .body
                    .as_deref()
                    .is_some_and(|body| contains_bytes(body, secret.as_bytes()))
        };
        if !long.is_empty() && long.iter().all(|(_, secret)| on_the_wire(secret)) {
            let names: Vec<&str> = long.iter().map(|(name, _)| name.as_str()).collect();
            found.push(format!(
                "every secret ({}) verbatim in the request: a custom shape must keep its signing key off the wire",
                names.join(", ")
            ));
        }
    }
    found
}

/// Whether a custom shape may carry a secret verbatim in `header`: in
/// `Authorization` (e.g. SigV4's `Credential=<access key id>/...`) or in a
/// header its description names (e.g. `x-amz-security-token`).
fn custom_header_allowed(shape: &AuthShape, header: &str) -> bool {
    match shape {
        AuthShape::Custom { description } => {
            header.eq_ignore_ascii_case("authorization")
                || description.to_ascii_lowercase().contains(&header.to_ascii_lowercase())
        }
        _ => false,
    }
}

/// Where `secret` appears in `url` (raw or percent-decoded), leaving out one
/// `allowed_param=secret` pair.
fn url_places(url: &str, secret: &str, allowed_param: Option<&str>) -> Vec<String> {
    let Ok(parsed) = Url::parse(url) else {
        return if url.contains(secret) { vec!["the URL".to_owned()] } else { Vec::new() };
    };
    let mut places = Vec::new();
    let in_text = |text: &str| text.contains(secret) || percent_decode(text).contains(secret);
    if in_text(parsed.host_str().unwrap_or_default())
        || in_text(parsed.username())
        || parsed.password().is_some_and(in_text)
    {
        places.push("the URL's authority".to_owned());
    }
    if in_text(parsed.path()) {
        places.push("the URL path".to_owned());
    }
    let mut allowed_used = false;
    for (key, value) in parsed.query_pairs() {
        if !allowed_used && Some(key.as_ref()) == allowed_param && value == secret {
            allowed_used = true;
            continue;
        }
        if key.contains(secret) || value.contains(secret) {
            let key = if key.contains(secret) { "(a secret)".into() } else { key };
            places.push(format!("the URL query parameter `{key}`"));
        }
    }
    if parsed.fragment().is_some_and(in_text) {
        places.push("the URL fragment".to_owned());
    }
    places
}

fn contains_bytes(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|window| window == needle)
}

/// `%XX` sequences decoded (invalid ones kept), as lossy UTF-8.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        if bytes[index] == b'%'
            && index + 2 < bytes.len()
            && let (Some(high), Some(low)) = (hex(bytes[index + 1]), hex(bytes[index + 2]))
        {
            out.push(high << 4 | low);
            index += 3;
            continue;
        }
        out.push(bytes[index]);
        index += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|digit| digit as u8)
}

/// A request in one line for a report: method, URL and header names, with
/// secret values redacted.
pub(crate) fn describe_request(bag: &SampleBag, request: &HttpRequest) -> String {
    let headers: Vec<String> = request
        .headers
        .iter()
        .map(|(name, value)| format!("{name}: {}", bag.redact(value)))
        .collect();
    let body = match &request.body {
        Some(body) => format!(", body {} bytes", body.len()),
        None => String::new(),
    };
    format!(
        "{} {} [{}]{body}",
        format!("{:?}", request.method).to_uppercase(),
        bag.redact(&request.url),
        if headers.is_empty() { "no headers".to_owned() } else { headers.join("; ") }
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::harness::samples::sample_bag;
    use crate::provider::{EnvVar, EnvVarRole, Method, ModelClass, ModelInfo};

    fn manifest(auth: AuthShape) -> Manifest {
        Manifest {
            slug: "acme".into(),
            display_name: "Acme".into(),
            plugin_version: "1.0.0".into(),
            env_vars: vec![
                EnvVar {
                    name: "ACME_KEY".into(),
                    role: EnvVarRole::Secret,
                    required: true,
                    description: String::new(),
                    default_value: None,
                    aliases: Vec::new(),
                },
                EnvVar {
                    name: "ACME_OTHER_SECRET".into(),
                    role: EnvVarRole::Secret,
                    required: false,
                    description: String::new(),
                    default_value: None,
                    aliases: Vec::new(),
                },
            ],
            auth,
            model_classes: vec![ModelClass::Chat],
            default_models: vec![ModelInfo {
                id: "a".into(),
                class: ModelClass::Chat,
                display_name: "A".into(),
                context_window: None,
                price: None,
            }],
            allowed_hosts: vec!["api.acme.com".into()],
            docs_url: "https://example.com".into(),
            probe_cost: None,
            clients: Vec::new(),
            default_client: None,
            token_exchange: false,
        }
    }

    fn request(url: &str, headers: &[(&str, &str)], body: Option<&str>) -> HttpRequest {
        HttpRequest {
            method: Method::Post,
            url: url.into(),
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            body: body.map(|body| body.as_bytes().to_vec()),
        }
    }

    #[test]
    fn bearer_shape_and_leaks() {
        let m = manifest(AuthShape::Bearer { env_var: "ACME_KEY".into() });
        let bag = sample_bag(&m, &BTreeMap::new());
        let key = bag.secret("ACME_KEY").unwrap().to_owned();
        let other = bag.secret("ACME_OTHER_SECRET").unwrap().to_owned();
        let good = request(
            "https://api.acme.com/v1/models",
            &[("Authorization", &format!("Bearer {key}"))],
            Some("{}"),
        );
        assert_eq!(check_shape(&m, &bag, &good), Ok(()));
        assert!(leaks(&m, &bag, &good).is_empty());

        let leaky = request(
            &format!("https://api.acme.com/v1/models?key={key}"),
            &[("authorization", &format!("Bearer {key}")), ("x-debug", &other)],
            Some(&format!("{{\"k\":\"{key}\"}}")),
        );
        assert_eq!(check_shape(&m, &bag, &leaky), Ok(()));
        assert_eq!(
            leaks(&m, &bag, &leaky),
            [
                "ACME_KEY in the URL query parameter `key`",
                "ACME_KEY in the body",
                "ACME_OTHER_SECRET in header `x-debug`"
            ]
        );

        let wrong =
            request("https://api.acme.com/", &[("authorization", &format!("Token {key}"))], None);
        assert_eq!(check_shape(&m, &bag, &wrong), Err("`authorization: Token <ACME_KEY>`".into()));
        let none = request("https://api.acme.com/", &[("accept", "x")], None);
        assert_eq!(
            check_shape(&m, &bag, &none),
            Err("no `authorization` header (headers: accept)".into())
        );
    }

    #[test]
    fn query_shape_allows_only_its_parameter() {
        let m = manifest(AuthShape::Query { param: "key".into(), env_var: "ACME_KEY".into() });
        let bag = sample_bag(&m, &BTreeMap::new());
        let key = bag.secret("ACME_KEY").unwrap().to_owned();
        let good = request(&format!("https://api.acme.com/v1/models?a=1&key={key}"), &[], None);
        assert_eq!(check_shape(&m, &bag, &good), Ok(()));
        assert!(leaks(&m, &bag, &good).is_empty());
        let twice = request(&format!("https://api.acme.com/{key}/models?key={key}"), &[], None);
        assert_eq!(leaks(&m, &bag, &twice), ["ACME_KEY in the URL path"]);
        let header = request("https://api.acme.com/", &[("x-key", &key)], None);
        assert!(check_shape(&m, &bag, &header).unwrap_err().starts_with("no query parameter"));
        assert_eq!(leaks(&m, &bag, &header), ["ACME_KEY in header `x-key`"]);
    }

    #[test]
    fn header_shape_and_custom_shape() {
        let m =
            manifest(AuthShape::Header { header: "x-api-key".into(), env_var: "ACME_KEY".into() });
        let bag = sample_bag(&m, &BTreeMap::new());
        let key = bag.secret("ACME_KEY").unwrap().to_owned();
        let good = request("https://api.acme.com/", &[("X-Api-Key", &key)], None);
        assert_eq!(check_shape(&m, &bag, &good), Ok(()));
        assert!(leaks(&m, &bag, &good).is_empty());

        let custom = manifest(AuthShape::Custom {
            description: "signs; x-token carries ACME_OTHER_SECRET".into(),
        });
        assert_eq!(leaks(&custom, &bag, &good), ["ACME_KEY in header `X-Api-Key`"]);
        let other = bag.secret("ACME_OTHER_SECRET").unwrap().to_owned();
        let signed = request(
            "https://api.acme.com/",
            &[
                ("authorization", &format!("SIG Credential={key}/x, Signature=abc")),
                ("x-token", &other),
            ],
            None,
        );
        assert_eq!(
            leaks(&custom, &bag, &signed),
            [
                "every secret (ACME_KEY, ACME_OTHER_SECRET) verbatim in the request: a custom shape must keep its signing key off the wire"
            ]
        );
        let mut partial = bag.clone();
        partial.secrets.push(("ACME_SIGNING_KEY".into(), "never-on-the-wire".into()));
        assert!(leaks(&custom, &partial, &signed).is_empty());
        let in_url = request(&format!("https://api.acme.com/?k={key}"), &[], None);
        assert_eq!(leaks(&custom, &partial, &in_url), ["ACME_KEY in the URL query parameter `k`"]);
        assert_eq!(percent_decode("a%2Fb%zz%4"), "a/b%zz%4");
    }

    #[test]
    fn requests_are_described_without_secrets() {
        let m = manifest(AuthShape::Bearer { env_var: "ACME_KEY".into() });
        let bag = sample_bag(&m, &BTreeMap::new());
        let key = bag.secret("ACME_KEY").unwrap().to_owned();
        let mut req = request(
            "https://api.acme.com/v1",
            &[("authorization", &format!("Bearer {key}"))],
            None,
        );
        req.method = Method::Get;
        let text = describe_request(&bag, &req);
        assert_eq!(text, "GET https://api.acme.com/v1 [authorization: Bearer <ACME_KEY>]");
    }
}

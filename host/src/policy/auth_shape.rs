//! Where a call's secrets may appear in a request the host hands on: only
//! where the manifest's declared auth shape puts them. The runtime applies
//! this to every request `authorize` and `health-probe` return, and the
//! plugin test harness reports with it.
//!
//! - `bearer`: the shape's variable in the value of `Authorization`.
//! - `header`: the shape's variable in the value of the declared header.
//! - `query`: the shape's variable as the value of the declared parameter.
//! - `custom` (a signature, e.g. SigV4): any secret in the value of
//!   `Authorization` or of a header the description names (SigV4 puts the
//!   access key id in `Credential=...` and the session token in
//!   `x-amz-security-token`), and at least one secret (the signing key) on
//!   no part of the request at all.
//!
//! Anywhere else is a violation: the URL's authority, path, other query
//! parameters (names or values) and fragment, header names, other headers,
//! the body. Secrets are matched in every form the [`Redactor`] knows
//! (percent-encoded, base64, hex, case-changed).

use url::Url;

use super::redaction::Redactor;
use crate::provider::{AuthShape, HttpRequest};

/// The places in `request` where a secret of `secrets` appears and the
/// declared `shape` does not put it, each as `NAME in <place>`; empty when
/// the request keeps to the shape. Places never quote a secret.
pub fn violations(shape: &AuthShape, secrets: &Redactor, request: &HttpRequest) -> Vec<String> {
    let mut found = Vec::new();
    // The body may be large: search it once.
    let in_body = request.body.as_deref().map(|body| secrets.names_in(body)).unwrap_or_default();
    for name in secrets.names() {
        let declared = declared_var(shape) == Some(name);
        for (header, value) in &request.headers {
            if secrets.finds(name, header) {
                found.push(format!("{name} in a header name"));
            }
            if secrets.finds(name, value) && !header_allowed(shape, declared, header) {
                found.push(format!("{name} in header `{}`", secrets.redact(header)));
            }
        }
        let allowed_param = match shape {
            AuthShape::Query { param, .. } if declared => Some(param.as_str()),
            _ => None,
        };
        for place in url_places(&request.url, secrets, name, allowed_param) {
            found.push(format!("{name} in {place}"));
        }
        if in_body.contains(&name) {
            found.push(format!("{name} in the body"));
        }
    }
    // A custom shape signs: at least one secret (the signing key) never goes
    // on the wire, or the "signature" is the secrets in the clear.
    if let AuthShape::Custom { .. } = shape {
        let on_the_wire =
            |name: &str| {
                request.headers.iter().any(|(header, value)| {
                    secrets.finds(name, header) || secrets.finds(name, value)
                }) || secrets.finds(name, &request.url)
                    || in_body.contains(&name)
            };
        let names: Vec<&str> = secrets.names().collect();
        if !names.is_empty() && names.iter().all(|name| on_the_wire(name)) {
            found.push(format!(
                "every secret ({}) verbatim in the request: a custom shape must keep its signing key off the wire",
                names.join(", ")
            ));
        }
    }
    found
}

/// What the declared shape allows, in words (secret values as `<NAME>`).
pub fn describe(shape: &AuthShape) -> String {
    match shape {
        AuthShape::Bearer { env_var } => format!("`Authorization: Bearer <{env_var}>`"),
        AuthShape::Header { header, env_var } => format!("`{header}: <{env_var}>`"),
        AuthShape::Query { param, env_var } => format!("the query parameter `{param}=<{env_var}>`"),
        AuthShape::Custom { description } => format!(
            "custom ({description}): secrets only in `Authorization` or the headers the description names, the signing key nowhere"
        ),
    }
}

/// The variable a declarative shape reads; `None` for a custom shape.
pub fn declared_var(shape: &AuthShape) -> Option<&str> {
    match shape {
        AuthShape::Bearer { env_var }
        | AuthShape::Header { env_var, .. }
        | AuthShape::Query { env_var, .. } => Some(env_var),
        AuthShape::Custom { .. } => None,
    }
}

/// Whether a secret may be in the value of `header`: the declared variable
/// in the declared header, or, for a custom shape, any secret in
/// `Authorization` or a header the description names.
fn header_allowed(shape: &AuthShape, is_declared_var: bool, header: &str) -> bool {
    match shape {
        AuthShape::Bearer { .. } => is_declared_var && header.eq_ignore_ascii_case("authorization"),
        AuthShape::Header { header: declared, .. } => {
            is_declared_var && header.eq_ignore_ascii_case(declared)
        }
        AuthShape::Query { .. } => false,
        AuthShape::Custom { description } => {
            header.eq_ignore_ascii_case("authorization")
                || (header.len() >= 3
                    && description.to_ascii_lowercase().contains(&header.to_ascii_lowercase()))
        }
    }
}

/// Where the secret `name` appears in `url`, leaving out one
/// `allowed_param=<value>` query pair. The URL is checked as parsed (what
/// an HTTP client sends) and as written.
fn url_places(
    url: &str,
    secrets: &Redactor,
    name: &str,
    allowed_param: Option<&str>,
) -> Vec<String> {
    let in_text = |text: &str| secrets.finds(name, text);
    let Ok(parsed) = Url::parse(url) else {
        return if in_text(url) { vec!["the URL".to_owned()] } else { Vec::new() };
    };
    let mut places = Vec::new();
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
        if !allowed_used && Some(key.as_ref()) == allowed_param {
            allowed_used = true;
            continue;
        }
        if in_text(&key) || in_text(&value) {
            places.push(format!("the URL query parameter `{}`", secrets.redact(&key)));
        }
    }
    if parsed.fragment().is_some_and(in_text) {
        places.push("the URL fragment".to_owned());
    }
    if places.is_empty() && in_text(&without_param(url, allowed_param)) {
        // As written, not as parsed (e.g. split by a tab the parser drops).
        places.push("the URL".to_owned());
    }
    places
}

/// `url` as written without its first `param=...` query pair.
fn without_param(url: &str, param: Option<&str>) -> String {
    let Some(param) = param else { return url.to_owned() };
    let (head, fragment) = url.split_once('#').map_or((url, None), |(h, f)| (h, Some(f)));
    let Some((base, query)) = head.split_once('?') else { return url.to_owned() };
    let mut removed = false;
    let pairs: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let key = pair.split_once('=').map_or(*pair, |(key, _)| key);
            let is_param = !removed && super::redaction::percent_decode(key) == param;
            removed |= is_param;
            !is_param
        })
        .collect();
    let mut out = format!("{base}?{}", pairs.join("&"));
    if let Some(fragment) = fragment {
        out.push('#');
        out.push_str(fragment);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::Method;

    const KEY: &str = "hc-key-0123456789abcdef";
    const OTHER: &str = "hc-other-fedcba9876543210";

    fn secrets() -> Redactor {
        Redactor::new([("ACME_KEY", KEY), ("ACME_OTHER_SECRET", OTHER)])
    }

    fn request(url: &str, headers: &[(&str, &str)], body: Option<&str>) -> HttpRequest {
        HttpRequest {
            method: Method::Post,
            url: url.into(),
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            body: body.map(|body| body.as_bytes().to_vec()),
        }
    }

    fn bearer() -> AuthShape {
        AuthShape::Bearer { env_var: "ACME_KEY".into() }
    }

    #[test]
    fn bearer_allows_only_the_authorization_header() {
        let good = request(
            "https://api.acme.com/v1/models",
            &[("Authorization", &format!("Bearer {KEY}")), ("accept", "json")],
            Some("{}"),
        );
        assert!(violations(&bearer(), &secrets(), &good).is_empty());

        let leaky = request(
            &format!("https://api.acme.com/v1/models?key={KEY}"),
            &[("authorization", &format!("Bearer {KEY}")), ("x-debug", OTHER)],
            Some(&format!("{{\"k\":\"{KEY}\"}}")),
        );
        assert_eq!(
            violations(&bearer(), &secrets(), &leaky),
            [
                "ACME_KEY in the URL query parameter `key`",
                "ACME_KEY in the body",
                "ACME_OTHER_SECRET in header `x-debug`"
            ]
        );
        let other_in_auth = request(
            "https://api.acme.com/",
            &[("authorization", &format!("Bearer {OTHER}"))],
            None,
        );
        assert_eq!(
            violations(&bearer(), &secrets(), &other_in_auth),
            ["ACME_OTHER_SECRET in header `authorization`"]
        );
    }

    #[test]
    fn hosts_header_names_and_encodings_are_found() {
        let b64 = "aGMta2V5LTAxMjM0NTY3ODlhYmNkZWY"; // base64("hc-key-0123456789abcdef")
        let cases = [
            (
                request(&format!("https://{KEY}.evil.example/"), &[], None),
                "ACME_KEY in the URL's authority",
            ),
            (
                request("https://api.acme.com/", &[(&format!("x-{KEY}"), "1")], None),
                "ACME_KEY in a header name",
            ),
            (
                request(&format!("https://api.acme.com/{}", KEY.replace('-', "%2D")), &[], None),
                "ACME_KEY in the URL path",
            ),
            (
                request(&format!("https://api.acme.com/?b={b64}"), &[], None),
                "ACME_KEY in the URL query parameter `b`",
            ),
            (
                request("https://api.acme.com/", &[("x-b", &format!("Basic {b64}"))], None),
                "ACME_KEY in header `x-b`",
            ),
            (
                request(&format!("https://api.acme.com/#{}", hex::encode(KEY)), &[], None),
                "ACME_KEY in the URL fragment",
            ),
            (
                request(&format!("https://api.acme.com/?{KEY}=1"), &[], None),
                "ACME_KEY in the URL query parameter `[redacted]`",
            ),
            (
                request(&format!("https://u:{KEY}@api.acme.com/"), &[], None),
                "ACME_KEY in the URL's authority",
            ),
        ];
        for (request, expected) in cases {
            assert_eq!(violations(&bearer(), &secrets(), &request), [expected], "{}", request.url);
        }
    }

    #[test]
    fn query_shape_allows_only_its_parameter() {
        let shape = AuthShape::Query { param: "key".into(), env_var: "ACME_KEY".into() };
        let good = request(&format!("https://api.acme.com/v1/models?a=1&key={KEY}"), &[], None);
        assert!(violations(&shape, &secrets(), &good).is_empty());
        let twice = request(&format!("https://api.acme.com/{KEY}/models?key={KEY}"), &[], None);
        assert_eq!(violations(&shape, &secrets(), &twice), ["ACME_KEY in the URL path"]);
        let again = request(&format!("https://api.acme.com/?key={KEY}&key={KEY}"), &[], None);
        assert_eq!(
            violations(&shape, &secrets(), &again),
            ["ACME_KEY in the URL query parameter `key`"]
        );
        let header = request("https://api.acme.com/", &[("x-key", KEY)], None);
        assert_eq!(violations(&shape, &secrets(), &header), ["ACME_KEY in header `x-key`"]);
        assert_eq!(
            without_param("https://a.example/p?x=1&key=v&key=w#f", Some("key")),
            "https://a.example/p?x=1&key=w#f"
        );
    }

    #[test]
    fn header_shape_allows_only_its_header() {
        let shape = AuthShape::Header { header: "x-api-key".into(), env_var: "ACME_KEY".into() };
        let good = request("https://api.acme.com/", &[("X-Api-Key", KEY)], None);
        assert!(violations(&shape, &secrets(), &good).is_empty());
        let bearer_too = request(
            "https://api.acme.com/",
            &[("X-Api-Key", KEY), ("authorization", &format!("Bearer {KEY}"))],
            None,
        );
        assert_eq!(
            violations(&shape, &secrets(), &bearer_too),
            ["ACME_KEY in header `authorization`"]
        );
    }

    #[test]
    fn custom_shape_keeps_its_signing_key_off_the_wire() {
        let shape =
            AuthShape::Custom { description: "signs; x-token carries ACME_OTHER_SECRET".into() };
        let signing = "hc-signing-key-never-sent";
        let three = Redactor::new([
            ("ACME_KEY", KEY),
            ("ACME_OTHER_SECRET", OTHER),
            ("ACME_SIGNING", signing),
        ]);
        let signed = request(
            "https://api.acme.com/",
            &[
                ("authorization", &format!("SIG Credential={KEY}/x, Signature=abc")),
                ("x-token", OTHER),
            ],
            None,
        );
        assert!(violations(&shape, &three, &signed).is_empty());
        assert_eq!(
            violations(&shape, &secrets(), &signed),
            [
                "every secret (ACME_KEY, ACME_OTHER_SECRET) verbatim in the request: a custom shape must keep its signing key off the wire"
            ]
        );
        let in_url = request(&format!("https://api.acme.com/?k={KEY}"), &[], None);
        assert_eq!(
            violations(&shape, &three, &in_url),
            ["ACME_KEY in the URL query parameter `k`"]
        );
        let in_body = request("https://api.acme.com/", &[], Some(&hex::encode(signing)));
        assert_eq!(violations(&shape, &three, &in_body), ["ACME_SIGNING in the body"]);
        let other_header = request("https://api.acme.com/", &[("x-sig", signing)], None);
        assert_eq!(violations(&shape, &three, &other_header), ["ACME_SIGNING in header `x-sig`"]);
    }

    #[test]
    fn shapes_are_described_without_values() {
        assert_eq!(describe(&bearer()), "`Authorization: Bearer <ACME_KEY>`");
        assert_eq!(declared_var(&bearer()), Some("ACME_KEY"));
        assert_eq!(declared_var(&AuthShape::Custom { description: String::new() }), None);
    }
}

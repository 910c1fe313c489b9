//! A caller's own auth never rides beside a plugin's. The runtime applies
//! both rules around every `authorize` call, whatever the plugin:
//!
//! - [`without_caller_auth`], before: the request loses every header that
//!   carries auth for any provider ([`AUTH_HEADERS`]), the header the
//!   manifest's shape declares, the query parameter a `query` shape
//!   declares, and the parameters of an AWS presigned URL (`X-Amz-*`).
//! - [`without_replaced_headers`], after: a header the plugin set replaces
//!   the caller's headers of the same name (an Anthropic plugin's
//!   `x-api-key` leaves no second `x-api-key` behind, whatever casing the
//!   caller used).

use crate::provider::{AuthShape, HttpRequest};

/// Headers that carry a credential or a signature for some provider, lower
/// case: bearer and basic auth, proxies', Anthropic's and Voyage-style
/// `x-api-key`, Azure's `api-key`, Google's `x-goog-api-key`, and the AWS
/// SigV4 headers a signature covers.
pub const AUTH_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
];

/// The query parameters of an AWS presigned URL (compared case-insensitively).
const PRESIGNED_PARAMS: &[&str] = &[
    "x-amz-algorithm",
    "x-amz-credential",
    "x-amz-date",
    "x-amz-expires",
    "x-amz-security-token",
    "x-amz-signature",
    "x-amz-signedheaders",
];

/// `request` without any auth of the caller's: the [`AUTH_HEADERS`], the
/// header `shape` declares, and, in the URL's query, the parameter a `query`
/// shape declares and any AWS presigning parameter. The rest of the URL is
/// kept byte for byte.
pub fn without_caller_auth(shape: &AuthShape, request: &HttpRequest) -> HttpRequest {
    let declared_header = match shape {
        AuthShape::Header { header, .. } => Some(header.as_str()),
        _ => None,
    };
    let headers = request
        .headers
        .iter()
        .filter(|(name, _)| {
            let name = name.trim();
            !AUTH_HEADERS.iter().any(|auth| name.eq_ignore_ascii_case(auth))
                && !declared_header.is_some_and(|declared| name.eq_ignore_ascii_case(declared))
        })
        .cloned()
        .collect();
    let declared_param = match shape {
        AuthShape::Query { param, .. } => Some(param.as_str()),
        _ => None,
    };
    let url = without_query_params(&request.url, |name| {
        declared_param == Some(name)
            || PRESIGNED_PARAMS.iter().any(|param| name.eq_ignore_ascii_case(param))
    });
    HttpRequest { url, headers, ..request.clone() }
}

/// `authorized` (what the plugin returned for `given`) without the caller's
/// headers whose name the plugin set anew: a header of `given` is dropped
/// when `authorized` also carries a header of that name (any case) with a
/// value `given` did not have.
pub fn without_replaced_headers(given: &HttpRequest, mut authorized: HttpRequest) -> HttpRequest {
    let from_caller = |(name, value): &(String, String)| {
        given.headers.iter().any(|(given_name, given_value)| {
            given_name.eq_ignore_ascii_case(name) && given_value == value
        })
    };
    let set_by_plugin: Vec<String> = authorized
        .headers
        .iter()
        .filter(|header| !from_caller(header))
        .map(|(name, _)| name.trim().to_ascii_lowercase())
        .collect();
    authorized.headers.retain(|header| {
        !(from_caller(header) && set_by_plugin.contains(&header.0.trim().to_ascii_lowercase()))
    });
    authorized
}

/// `url` without the query pairs whose percent-decoded name `drop` says
/// to drop; every other byte of the URL, fragment included, is kept.
fn without_query_params(url: &str, drop: impl Fn(&str) -> bool) -> String {
    let (head, fragment) = match url.split_once('#') {
        Some((head, fragment)) => (head, Some(fragment)),
        None => (url, None),
    };
    let Some((base, query)) = head.split_once('?') else { return url.to_owned() };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let name = pair.split_once('=').map_or(*pair, |(name, _)| name);
            let name = super::redaction::percent_decode(name);
            !drop(&name)
        })
        .collect();
    let mut out = base.to_owned();
    if kept.len() == query.split('&').count() {
        out = head.to_owned();
    } else if kept.iter().any(|pair| !pair.is_empty()) {
        out.push('?');
        out.push_str(&kept.join("&"));
    }
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

    fn request(url: &str, headers: &[(&str, &str)]) -> HttpRequest {
        HttpRequest {
            method: Method::Post,
            url: url.into(),
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            body: Some(b"{}".to_vec()),
        }
    }

    fn names(request: &HttpRequest) -> Vec<&str> {
        request.headers.iter().map(|(name, _)| name.as_str()).collect()
    }

    #[test]
    fn every_auth_header_of_any_provider_is_removed_whatever_its_case() {
        let caller = request(
            "https://api.anthropic.com/v1/messages",
            &[
                ("Authorization", "Bearer caller"),
                ("content-type", "application/json"),
                ("X-Api-Key", "caller"),
                ("API-KEY", "caller"),
                ("x-goog-api-key", "caller"),
                (" Proxy-Authorization", "Basic caller"),
                ("X-Amz-Date", "20150830T123600Z"),
                ("x-amz-security-token", "caller"),
                ("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD"),
                ("anthropic-version", "2023-06-01"),
            ],
        );
        let bearer = AuthShape::Bearer { env_var: "ACME_KEY".into() };
        let cleaned = without_caller_auth(&bearer, &caller);
        assert_eq!(names(&cleaned), ["content-type", "anthropic-version"]);
        assert_eq!((cleaned.url.as_str(), &cleaned.body), (caller.url.as_str(), &caller.body));
        // A shape's own header, whatever it is called, goes too.
        let custom_header =
            AuthShape::Header { header: "X-Acme-Token".into(), env_var: "ACME_KEY".into() };
        let acme = request("https://api.acme.com/", &[("x-acme-token", "caller"), ("a", "1")]);
        assert_eq!(names(&without_caller_auth(&custom_header, &acme)), ["a"]);
        assert_eq!(names(&without_caller_auth(&bearer, &acme)), ["x-acme-token", "a"]);
    }

    #[test]
    fn the_query_auth_parameter_and_presigning_parameters_are_removed() {
        let query = AuthShape::Query { param: "key".into(), env_var: "ACME_KEY".into() };
        for (url, expected) in [
            ("https://a.example/v1/m?key=caller", "https://a.example/v1/m"),
            (
                "https://a.example/v1/m?alt=sse&key=caller&x=%20y",
                "https://a.example/v1/m?alt=sse&x=%20y",
            ),
            ("https://a.example/v1/m?k%65y=caller&key&x=1#frag", "https://a.example/v1/m?x=1#frag"),
            ("https://a.example/v1/m?keys=1&akey=2", "https://a.example/v1/m?keys=1&akey=2"),
            ("https://a.example/v1/m?&&", "https://a.example/v1/m?&&"),
            ("https://a.example/v1/m#key=1", "https://a.example/v1/m#key=1"),
            (
                "https://s.example/o?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKID%2F&x-amz-signature=ab&part=1",
                "https://s.example/o?part=1",
            ),
        ] {
            assert_eq!(without_caller_auth(&query, &request(url, &[])).url, expected, "{url}");
        }
        // A header shape leaves a `key` parameter alone (it is not its auth).
        let header = AuthShape::Header { header: "x-api-key".into(), env_var: "ACME_KEY".into() };
        let url = "https://a.example/v1/m?key=1";
        assert_eq!(without_caller_auth(&header, &request(url, &[])).url, url);
    }

    #[test]
    fn a_header_the_plugin_sets_replaces_the_callers_of_that_name() {
        let given = request(
            "https://api.acme.com/",
            &[("Anthropic-Version", "2023-01-01"), ("X-Trace", "caller"), ("accept", "json")],
        );
        let mut authorized = given.clone();
        authorized.headers.push(("x-trace".into(), "plugin".into()));
        authorized.headers.push(("x-api-key".into(), "plugin-key".into()));
        let kept = without_replaced_headers(&given, authorized);
        assert_eq!(
            kept.headers,
            [
                ("Anthropic-Version".to_owned(), "2023-01-01".to_owned()),
                ("accept".to_owned(), "json".to_owned()),
                ("x-trace".to_owned(), "plugin".to_owned()),
                ("x-api-key".to_owned(), "plugin-key".to_owned()),
            ]
        );
        // A plugin that keeps the caller's header (same value) keeps one copy.
        assert_eq!(without_replaced_headers(&given, given.clone()), given);
    }
}

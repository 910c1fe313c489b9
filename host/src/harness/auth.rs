//! Whether an authorized request carries the declared auth shape, and
//! requests described for reports. Where secrets may *not* appear is the
//! runtime's rule ([`crate::policy::auth_shape`]): it refuses such a request,
//! and the harness reports the refusal.

use url::Url;

use super::samples::SampleBag;
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
    fn bearer_shape() {
        let m = manifest(AuthShape::Bearer { env_var: "ACME_KEY".into() });
        let bag = sample_bag(&m, &BTreeMap::new());
        let key = bag.secret("ACME_KEY").unwrap().to_owned();
        let good = request(
            "https://api.acme.com/v1/models",
            &[("Authorization", &format!("Bearer {key}"))],
            Some("{}"),
        );
        assert_eq!(check_shape(&m, &bag, &good), Ok(()));
        let wrong =
            request("https://api.acme.com/", &[("authorization", &format!("Token {key}"))], None);
        assert_eq!(check_shape(&m, &bag, &wrong), Err("`authorization: Token <ACME_KEY>`".into()));
        let none = request("https://api.acme.com/", &[("accept", "x")], None);
        assert_eq!(
            check_shape(&m, &bag, &none),
            Err("no `authorization` header (headers: accept)".into())
        );
        let twice = request(
            "https://api.acme.com/",
            &[("authorization", &format!("Bearer {key}")), ("Authorization", "x")],
            None,
        );
        assert_eq!(check_shape(&m, &bag, &twice), Err("2 `authorization` headers".into()));
    }

    #[test]
    fn query_and_header_shapes() {
        let m = manifest(AuthShape::Query { param: "key".into(), env_var: "ACME_KEY".into() });
        let bag = sample_bag(&m, &BTreeMap::new());
        let key = bag.secret("ACME_KEY").unwrap().to_owned();
        let good = request(&format!("https://api.acme.com/v1/models?a=1&key={key}"), &[], None);
        assert_eq!(check_shape(&m, &bag, &good), Ok(()));
        let header = request("https://api.acme.com/", &[("x-key", &key)], None);
        assert!(check_shape(&m, &bag, &header).unwrap_err().starts_with("no query parameter"));

        let m =
            manifest(AuthShape::Header { header: "x-api-key".into(), env_var: "ACME_KEY".into() });
        let good = request("https://api.acme.com/", &[("X-Api-Key", &key)], None);
        assert_eq!(check_shape(&m, &sample_bag_with(&m, &key), &good), Ok(()));
        let custom = manifest(AuthShape::Custom { description: "signs".into() });
        assert_eq!(check_shape(&custom, &bag, &header), Ok(()));
    }

    fn sample_bag_with(m: &Manifest, key: &str) -> SampleBag {
        sample_bag(m, &BTreeMap::from([("ACME_KEY".to_owned(), key.to_owned())]))
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

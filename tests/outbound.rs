//! The outbound sender against a mock upstream on loopback: address policy,
//! no redirects, timeouts and the body cap.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use platos_host::outbound::{Outbound, OutboundConfig};
use platos_host::policy::addresses::AddressPolicy;
use platos_host::policy::hosts::AllowedHosts;
use platos_host::provider::HttpRequest;

/// Starts the mock upstream on 127.0.0.1 and returns its address.
async fn mock_upstream() -> SocketAddr {
    let app = Router::new()
        .route(
            "/v1/models",
            get(|headers: HeaderMap| async move {
                let auth =
                    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
                if auth == "Bearer good" {
                    (StatusCode::OK, r#"{"data":[{"id":"m1"}]}"#).into_response()
                } else {
                    (StatusCode::UNAUTHORIZED, "{}").into_response()
                }
            }),
        )
        .route(
            "/redirect",
            get(|| async { (StatusCode::FOUND, [(header::LOCATION, "http://169.254.169.254/")]) }),
        )
        .route(
            "/hang",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                "late"
            }),
        )
        .route("/big", get(|| async { "x".repeat(3 << 20) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

fn sender(allow_loopback: bool) -> Outbound {
    Outbound::new(OutboundConfig {
        addresses: AddressPolicy { allow_loopback, allow_private: false },
        timeout: Duration::from_millis(500),
        max_body_bytes: 1 << 20,
    })
    .unwrap()
}

fn base(address: SocketAddr) -> AllowedHosts {
    AllowedHosts::new(&[], Some(&format!("http://{address}/v1"))).unwrap()
}

fn get_with_key(url: String, key: &str) -> HttpRequest {
    let mut request = HttpRequest::get(url);
    request.headers.push(("authorization".into(), format!("Bearer {key}")));
    request
}

#[tokio::test]
async fn sends_to_an_allowed_loopback_upstream() {
    let address = mock_upstream().await;
    let outbound = sender(true);
    let response = outbound
        .send(&get_with_key(format!("http://{address}/v1/models"), "good"), &base(address))
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, br#"{"data":[{"id":"m1"}]}"#);
    let response = outbound
        .send(&get_with_key(format!("http://{address}/v1/models"), "bad"), &base(address))
        .await;
    assert_eq!(response.status, 401);
}

#[tokio::test]
async fn loopback_is_refused_unless_the_operator_allows_it() {
    let address = mock_upstream().await;
    let response = sender(false)
        .send(&get_with_key(format!("http://{address}/v1/models"), "good"), &base(address))
        .await;
    assert_eq!(response.status, 0);
    let reason = String::from_utf8(response.body).unwrap();
    assert!(reason.contains("loopback"), "{reason}");
    assert!(!reason.contains("good"), "the key leaked into the reason: {reason}");
}

#[tokio::test]
async fn names_resolving_to_refused_addresses_are_not_connected() {
    // `localhost` resolves to loopback only: refused by a closed policy, at DNS time.
    let allowed = AllowedHosts::new(&[], Some("http://localhost:9/v1")).unwrap();
    let response =
        sender(false).send(&HttpRequest::get("http://localhost:9/v1/models"), &allowed).await;
    assert_eq!(response.status, 0);
    let reason = String::from_utf8(response.body).unwrap();
    assert!(reason.contains("refused addresses") || reason.contains("loopback"), "{reason}");
}

#[tokio::test]
async fn metadata_addresses_are_refused_even_when_allowed_as_base() {
    let allowed = AllowedHosts::new(&[], Some("http://169.254.169.254")).unwrap();
    let response = sender(true)
        .send(&HttpRequest::get("http://169.254.169.254/latest/meta-data/"), &allowed)
        .await;
    assert_eq!(response.status, 0);
    assert!(String::from_utf8(response.body).unwrap().contains("metadata"));
}

#[tokio::test]
async fn redirects_are_not_followed() {
    let address = mock_upstream().await;
    let response = sender(true)
        .send(&HttpRequest::get(format!("http://{address}/redirect")), &base(address))
        .await;
    assert_eq!(response.status, 302, "the redirect itself is the answer");
}

#[tokio::test]
async fn a_hanging_upstream_times_out() {
    let address = mock_upstream().await;
    let started = std::time::Instant::now();
    let response = sender(true)
        .send(&HttpRequest::get(format!("http://{address}/hang")), &base(address))
        .await;
    assert_eq!(response.status, 0);
    assert!(String::from_utf8(response.body).unwrap().contains("timed out"));
    assert!(started.elapsed() < Duration::from_secs(10), "the timeout did not bound the request");
}

#[tokio::test]
async fn the_body_is_capped() {
    let address = mock_upstream().await;
    let response =
        sender(true).send(&HttpRequest::get(format!("http://{address}/big")), &base(address)).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body.len(), 1 << 20);
}

#[tokio::test]
async fn hosts_outside_the_allowed_list_are_refused_before_sending() {
    let address = mock_upstream().await;
    let allowed = AllowedHosts::new(&["api.openai.com".to_owned()], None).unwrap();
    let response =
        sender(true).send(&HttpRequest::get(format!("http://{address}/v1/models")), &allowed).await;
    assert_eq!(response.status, 0);
    assert!(String::from_utf8(response.body).unwrap().contains("is not allowed"));
}

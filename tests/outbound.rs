//! The outbound sender against a mock upstream on loopback: address policy,
//! no redirects, timeouts and the body cap, for whole and streamed answers.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use platos_host::outbound::{Outbound, OutboundConfig, SendError, StreamLimits};
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
        .route("/big", get(|| async { "x".repeat(3 << 20) }))
        .route(
            "/drip",
            get(|| async {
                // Four chunks 200 ms apart: longer than the whole-request timeout.
                let chunks = futures_util::stream::unfold(0, |sent| async move {
                    if sent == 4 {
                        return None;
                    }
                    if sent > 0 {
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                    Some((Ok::<_, std::convert::Infallible>(format!("chunk {sent}\n")), sent + 1))
                });
                axum::body::Body::from_stream(chunks)
            }),
        );
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

/// A listener on 127.0.0.1 that counts the connections it accepts and
/// answers each with a bare 200: any connection at all shows in the count.
async fn tripwire() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let connections = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request).await;
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await;
        }
    });
    (port, connections)
}

/// Sends a GET with a canary key to `url`, with `url` itself as the base
/// URL (so only the address policy stands in the way), and returns the
/// status and the body as text.
async fn send_to(outbound: &Outbound, url: &str) -> (u16, String) {
    let allowed = AllowedHosts::new(&[], Some(url)).unwrap();
    let response =
        outbound.send(&get_with_key(url.to_owned(), "sk-canary-outbound"), &allowed).await;
    (response.status, String::from_utf8(response.body).unwrap())
}

#[tokio::test]
async fn every_spelling_of_loopback_is_refused_without_connecting() {
    use std::sync::atomic::Ordering;
    let (port, connections) = tripwire().await;
    let closed = sender(false);
    for host in [
        "127.0.0.1",
        "127.1",
        "2130706433",
        "0x7f000001",
        "0x7f.0.0.1",
        "0177.0.0.1",
        "0177.1",
        "127.0.0.1.",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::127.0.0.1]",
        "[64:ff9b::7f00:1]",
        "[64:ff9b::127.0.0.1]",
        "[2002:7f00:1::]",
        "[2001:0:4136:e378:8000:63bf:80ff:fffe]",
        "[::1]",
        "[0:0:0:0:0:0:0:1]",
    ] {
        let url = format!("http://{host}:{port}/v1/models");
        let (status, reason) = send_to(&closed, &url).await;
        assert_eq!(status, 0, "{url}: {reason}");
        assert!(reason.contains("is a loopback address"), "{url}: {reason}");
        assert!(!reason.contains("sk-canary"), "{url}: {reason}");
    }
    assert_eq!(connections.load(Ordering::SeqCst), 0, "a refused address was connected to");

    // The tripwire does see a connection the policy allows.
    let (status, body) = send_to(&sender(true), &format!("http://2130706433:{port}/")).await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn metadata_and_reserved_addresses_in_every_spelling_are_refused_whatever_is_allowed() {
    let open = Outbound::new(OutboundConfig {
        addresses: AddressPolicy { allow_loopback: true, allow_private: true },
        timeout: Duration::from_millis(500),
        max_body_bytes: 1 << 20,
    })
    .unwrap();
    for (host, expected) in [
        ("169.254.169.254", "never allowed"),
        ("2852039166", "never allowed"),
        ("0xa9.0xfe.0xa9fe", "never allowed"),
        ("0xa9fe.0xa9fe", "not an absolute http(s) URL"),
        ("0xa9fea9fe", "never allowed"),
        ("0251.0376.0251.0376", "never allowed"),
        ("169.254.43518", "never allowed"),
        ("100.100.100.200", "never allowed"),
        ("[::ffff:a9fe:a9fe]", "never allowed"),
        ("[::ffff:169.254.169.254]", "never allowed"),
        ("[::a9fe:a9fe]", "never allowed"),
        ("[64:ff9b::a9fe:a9fe]", "never allowed"),
        ("[64:ff9b:1::a9fe:a9fe]", "never allowed"),
        ("[2002:a9fe:a9fe::1]", "never allowed"),
        ("[2001:0:4136:e378:8000:63bf:5601:5601]", "never allowed"),
        ("[fe80::1]", "never allowed"),
        ("[fd00:ec2::254]", "never allowed"),
        ("0.0.0.0", "not a unicast address"),
        ("0", "not a unicast address"),
        ("[::]", "not a unicast address"),
        ("255.255.255.255", "not a unicast address"),
        ("192.0.2.1", "is reserved"),
        ("198.51.100.1", "is reserved"),
        ("203.0.113.1", "is reserved"),
        ("192.0.0.170", "is reserved"),
        ("[2001:db8::1]", "is reserved"),
        ("[100::1]", "is reserved"),
        ("[64:ff9b::c000:201]", "is reserved"),
    ] {
        let url = format!("http://{host}/latest/meta-data/");
        let (status, reason) = send_to(&open, &url).await;
        assert_eq!(status, 0, "{url}: {reason}");
        assert!(reason.contains(expected), "{url}: {reason}");
        assert!(
            !reason.contains("could not connect") && !reason.contains("timed out"),
            "{url} was attempted: {reason}"
        );
        assert!(!reason.contains("sk-canary"), "{url}: {reason}");
    }
}

#[tokio::test]
async fn private_addresses_in_every_spelling_need_the_operator() {
    let closed = sender(true);
    for host in [
        "10.0.0.1",
        "167772161",
        "198.18.0.1",
        "[::ffff:10.0.0.1]",
        "[64:ff9b::a00:1]",
        "[2002:c0a8:101::1]",
        "[fec0::1]",
        "[fd00::1]",
        "[64:ff9b:1::808:808]",
    ] {
        let url = format!("http://{host}/v1/models");
        let (status, reason) = send_to(&closed, &url).await;
        assert_eq!(status, 0, "{url}: {reason}");
        assert!(reason.contains("--allow-private-upstreams"), "{url}: {reason}");
    }
}

/// Reads a streamed body to its end or its first error.
async fn drain(body: &mut platos_host::outbound::UpstreamBody) -> (String, Option<String>) {
    let mut text = Vec::new();
    loop {
        match body.next_chunk().await {
            Ok(Some(chunk)) => text.extend_from_slice(&chunk),
            Ok(None) => return (String::from_utf8(text).unwrap(), None),
            Err(reason) => return (String::from_utf8(text).unwrap(), Some(reason)),
        }
    }
}

#[tokio::test]
async fn a_stream_outlives_the_whole_request_timeout_and_an_idle_gap_breaks_it() {
    let address = mock_upstream().await;
    let request = HttpRequest::get(format!("http://{address}/drip"));
    let limits = StreamLimits { idle: Duration::from_millis(600), ..StreamLimits::default() };
    let started = std::time::Instant::now();
    let mut answer = sender(true).send_streaming(&request, &base(address), limits).await.unwrap();
    assert_eq!(answer.status, 200);
    let (text, error) = drain(&mut answer.body).await;
    assert_eq!((text.as_str(), error), ("chunk 0\nchunk 1\nchunk 2\nchunk 3\n", None));
    assert!(started.elapsed() > Duration::from_millis(500), "longer than the 500 ms whole timeout");

    let limits = StreamLimits { idle: Duration::from_millis(50), ..StreamLimits::default() };
    let mut answer = sender(true).send_streaming(&request, &base(address), limits).await.unwrap();
    let (text, error) = drain(&mut answer.body).await;
    assert_eq!(text, "chunk 0\n");
    assert_eq!(error.as_deref(), Some("no body chunk within 50ms"));
}

#[tokio::test]
async fn a_stream_waits_for_its_first_byte_only_so_long_and_is_capped() {
    let address = mock_upstream().await;
    let limits = StreamLimits { first_byte: Duration::from_millis(100), ..StreamLimits::default() };
    let hang = HttpRequest::get(format!("http://{address}/hang"));
    let error = sender(true).send_streaming(&hang, &base(address), limits).await.unwrap_err();
    assert_eq!(error, SendError::Transport("no answer within 100ms".to_owned()));

    let limits = StreamLimits { max_bytes: 1 << 20, ..StreamLimits::default() };
    let big = HttpRequest::get(format!("http://{address}/big"));
    let mut answer = sender(true).send_streaming(&big, &base(address), limits).await.unwrap();
    let (text, error) = drain(&mut answer.body).await;
    assert!(text.len() <= 1 << 20, "{} bytes", text.len());
    assert_eq!(error.as_deref(), Some("the answer is larger than the host relays"));
}

#[tokio::test]
async fn a_stream_goes_through_the_same_checks_as_a_whole_answer() {
    let address = mock_upstream().await;
    let allowed = AllowedHosts::new(&["api.openai.com".to_owned()], None).unwrap();
    let request = HttpRequest::get(format!("http://{address}/v1/models"));
    let limits = StreamLimits::default();
    let error = sender(true).send_streaming(&request, &allowed, limits).await.unwrap_err();
    assert!(
        matches!(&error, SendError::Refused(reason) if reason.contains("is not allowed")),
        "{error}"
    );
    let error = sender(false).send_streaming(&request, &base(address), limits).await.unwrap_err();
    assert!(matches!(error, SendError::Refused(_)), "loopback needs the operator: {error}");
    let redirect = HttpRequest::get(format!("http://{address}/redirect"));
    let answer = sender(true).send_streaming(&redirect, &base(address), limits).await.unwrap();
    assert_eq!(answer.status, 302, "a redirect is answered, not followed");
}

//! Client connection limits of the real server on a loopback port: a cap on
//! connections held at once (more are answered 503 and closed), a timeout
//! on slow headers, and an idle timeout, so half-open connections can never
//! lock `/healthz` out.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use platos_host::api::connections::ConnectionLimits;
use platos_host::api::server::{Server, ServerConfig};

fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("connections-test-plugin-cache")
}

async fn start(limits: ConnectionLimits) -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new("127.0.0.1:0".parse().unwrap(), dir.path().to_owned());
    config.cache_dir = Some(cache_dir());
    config.health_interval = Duration::ZERO;
    config.connections = limits;
    let server = Server::start(config).await.unwrap();
    (dir, server)
}

/// Reads until the server closes the connection or `limit` passes; returns
/// what was read and whether it was closed.
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    stream.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buffer = [0u8; 4096];
    while started.elapsed() < limit {
        match stream.read(&mut buffer) {
            Ok(0) => return (String::from_utf8_lossy(&out).into_owned(), true),
            Ok(read) => out.extend_from_slice(&buffer[..read]),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (String::from_utf8_lossy(&out).into_owned(), true),
        }
    }
    (String::from_utf8_lossy(&out).into_owned(), false)
}

fn healthz(address: SocketAddr) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").unwrap();
    read_until_closed(&mut stream, Duration::from_secs(5)).0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_are_capped_and_timed_out() {
    let limits = ConnectionLimits {
        max_connections: 8,
        header_read_timeout: Duration::from_millis(400),
        idle_timeout: Duration::from_secs(30),
    };
    let (_dir, server) = start(limits).await;
    let address = server.address();
    tokio::task::spawn_blocking(move || {
        // Eight connections that send half a request and stop.
        let mut held: Vec<TcpStream> = (0..8)
            .map(|_| {
                let mut stream = TcpStream::connect(address).unwrap();
                stream.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n").unwrap();
                stream
            })
            .collect();
        std::thread::sleep(Duration::from_millis(100));
        // The ninth is answered 503 at once and closed.
        let mut ninth = TcpStream::connect(address).unwrap();
        let (answer, closed) = read_until_closed(&mut ninth, Duration::from_secs(2));
        assert!(closed, "the connection over the cap stays open");
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        assert!(answer.contains("too_many_connections"), "{answer}");
        // The slow ones are closed once their header timeout passes...
        let started = Instant::now();
        for stream in &mut held {
            let (_, closed) = read_until_closed(stream, Duration::from_secs(3));
            assert!(closed, "a slow-header connection is held past its timeout");
        }
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        // ... and /healthz answers again.
        let answer = healthz(address);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    })
    .await
    .unwrap();
    let client = reqwest::Client::new();
    let metrics = client
        .get(format!("http://{address}/metrics"))
        .bearer_auth(std::fs::read_to_string(_dir.path().join("operator.token")).unwrap().trim())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let refused = metrics
        .lines()
        .find_map(|line| line.strip_prefix("platos_connections_refused_total "))
        .expect(&metrics);
    assert!(refused.parse::<u64>().unwrap() >= 1, "{metrics}");
    server.shutdown(Duration::from_secs(2)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_and_an_active_one_is_not() {
    let limits = ConnectionLimits {
        max_connections: 64,
        header_read_timeout: Duration::from_secs(30),
        idle_timeout: Duration::from_millis(600),
    };
    let (_dir, server) = start(limits).await;
    let address = server.address();
    tokio::task::spawn_blocking(move || {
        // Requests every 200 ms keep a connection alive past the idle timeout.
        let mut active = TcpStream::connect(address).unwrap();
        active.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        for _ in 0..6 {
            active.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
            let mut buffer = [0u8; 1024];
            let read = active.read(&mut buffer).unwrap();
            assert!(std::str::from_utf8(&buffer[..read]).unwrap().starts_with("HTTP/1.1 200"));
            std::thread::sleep(Duration::from_millis(200));
        }
        // Then it goes quiet and is closed.
        let started = Instant::now();
        let (_, closed) = read_until_closed(&mut active, Duration::from_secs(3));
        assert!(closed, "an idle connection is held past the idle timeout");
        assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());
    })
    .await
    .unwrap();
    server.shutdown(Duration::from_secs(2)).await.unwrap();
}

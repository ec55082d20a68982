//! The hardened client against a scripted local HTTP server: response-headers deadline, no
//! hidden retries, streaming bodies not cut, and errors classified for the watcher.
// Tests unwrap: a panic is a test failure with a clear location.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use kube::client::Body;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use watchpool_api::ErrorReason;
use watchpool_engine::client::{
    ClientOptions, build_client, check_response, classify, is_connect_failure, is_timeout,
    retry_after,
};
use watchpool_engine::decode::BodyLines;

/// What the scripted server does with each connection, after reading the request head.
#[derive(Clone, Copy)]
enum Script {
    /// Never answers; keeps the socket open.
    Silent,
    /// Answers with this status, a JSON Status body and an optional Retry-After.
    Status(u16, Option<u32>),
    /// 200 with a chunked body: `lines` lines, one every `every`.
    Stream { lines: usize, every: Duration },
    /// 200 with headers and half a line, then a TCP reset.
    ResetMidStream,
    /// 200 echoing the request's User-Agent as the body.
    EchoUserAgent,
    /// 200, then one byte of a line every `every`, never a newline.
    Drip { every: Duration },
}

struct Server {
    addr: SocketAddr,
    requests: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(script: Script) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            // Connection tasks end with the test's runtime.
            tokio::spawn(handle(socket, script, counter));
        }
    });
    Server {
        addr,
        requests,
        task,
    }
}

async fn read_head(socket: &mut TcpStream) -> Option<String> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if socket.read(&mut byte).await.ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(String::from_utf8_lossy(&head).into_owned())
}

async fn handle(mut socket: TcpStream, script: Script, counter: Arc<AtomicUsize>) {
    // Keep-alive: serve requests on this connection until it closes.
    while let Some(head) = read_head(&mut socket).await {
        counter.fetch_add(1, Ordering::SeqCst);
        match script {
            Script::Silent => {
                tokio::time::sleep(Duration::from_secs(3_600)).await;
            }
            Script::Status(code, retry) => {
                let body = format!(
                    r#"{{"kind":"Status","apiVersion":"v1","status":"Failure","message":"scripted","reason":"Scripted","code":{code}}}"#
                );
                let retry = retry
                    .map(|s| format!("Retry-After: {s}\r\n"))
                    .unwrap_or_default();
                let response = format!(
                    "HTTP/1.1 {code} Scripted\r\nContent-Type: application/json\r\n{retry}Content-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                if socket.write_all(response.as_bytes()).await.is_err() {
                    return;
                }
            }
            Script::Stream { lines, every } => {
                let head = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for n in 0..lines {
                    tokio::time::sleep(every).await;
                    let line = format!("{{\"n\":{n}}}\n");
                    let chunk = format!("{:x}\r\n{line}\r\n", line.len());
                    if socket.write_all(chunk.as_bytes()).await.is_err() {
                        return;
                    }
                }
                if socket.write_all(b"0\r\n\r\n").await.is_err() {
                    return;
                }
            }
            Script::ResetMidStream => {
                let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n{\"half\r\n";
                let _ = socket.write_all(head.as_bytes()).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                // Linger 0: closing sends a RST instead of a FIN.
                let _ = socket.set_zero_linger();
                return;
            }
            Script::Drip { every } => {
                let head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                loop {
                    tokio::time::sleep(every).await;
                    if socket.write_all(b"1\r\nx\r\n").await.is_err() {
                        return;
                    }
                }
            }
            Script::EchoUserAgent => {
                let agent = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .starts_with("user-agent:")
                            .then(|| l["user-agent:".len()..].trim().to_string())
                    })
                    .unwrap_or_default();
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{agent}",
                    agent.len()
                );
                if socket.write_all(response.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    }
}

fn options(headers_timeout: Duration) -> ClientOptions {
    ClientOptions {
        connect_timeout: Duration::from_secs(2),
        response_headers_timeout: headers_timeout,
        user_agent: "watchpool-test/1".into(),
        ..ClientOptions::default()
    }
}

async fn client_for(addr: SocketAddr, headers_timeout: Duration) -> kube::Client {
    let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    build_client(config, &options(headers_timeout))
        .await
        .unwrap()
}

fn get(path: &str) -> Request<Vec<u8>> {
    Request::get(path).body(Vec::new()).unwrap()
}

#[tokio::test]
async fn silent_server_fails_after_the_headers_timeout() {
    let server = serve(Script::Silent).await;
    let client = client_for(server.addr, Duration::from_millis(300)).await;
    let started = Instant::now();
    let err = client.request_text(get("/api/v1/pods")).await.unwrap_err();
    let elapsed = started.elapsed();
    assert!(is_timeout(&err), "{err:?}");
    assert_eq!(classify(&err), ErrorReason::RequestTimeout);
    assert!(
        elapsed >= Duration::from_millis(290) && elapsed < Duration::from_secs(3),
        "failed after {elapsed:?}"
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn server_errors_and_throttling_reach_the_caller_once() {
    for (code, reason) in [
        (503, ErrorReason::ServerError),
        (504, ErrorReason::ServerError),
        (429, ErrorReason::Throttled),
        (500, ErrorReason::ServerError),
    ] {
        let server = serve(Script::Status(code, Some(1))).await;
        let client = client_for(server.addr, Duration::from_secs(5)).await;
        let started = Instant::now();
        let err = client.request_text(get("/api/v1/pods")).await.unwrap_err();
        assert_eq!(classify(&err), reason, "{code}: {err:?}");
        // Not retried: one request reached the server, and no retry delay was spent.
        assert_eq!(server.requests.load(Ordering::SeqCst), 1, "{code}");
        assert!(started.elapsed() < Duration::from_secs(1), "{code}");
    }
}

#[tokio::test]
async fn retry_after_header_is_kept_by_check_response() {
    let server = serve(Script::Status(429, Some(7))).await;
    let client = client_for(server.addr, Duration::from_secs(5)).await;
    let response = client
        .send(Request::get("/api/v1/pods").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let err = check_response(response, 64 * 1024).await.unwrap_err();
    assert_eq!(classify(&err), ErrorReason::Throttled);
    assert_eq!(retry_after(&err), Some(Duration::from_secs(7)));
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn streaming_body_longer_than_the_headers_timeout_is_not_cut() {
    let server = serve(Script::Stream {
        lines: 8,
        every: Duration::from_millis(100),
    })
    .await;
    let client = client_for(server.addr, Duration::from_millis(250)).await;
    let started = Instant::now();
    let response = client
        .send(
            Request::get("/api/v1/pods?watch=1")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let response = check_response(response, 1024).await.unwrap();
    let mut lines = BodyLines::new(response.into_body(), 1024);
    let mut got = Vec::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        got.push(line);
    }
    assert!(started.elapsed() >= Duration::from_millis(700));
    let expected: Vec<Bytes> = (0..8)
        .map(|n| Bytes::from(format!("{{\"n\":{n}}}")))
        .collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn reset_in_the_middle_of_a_stream_is_reported_as_a_reset() {
    let server = serve(Script::ResetMidStream).await;
    let client = client_for(server.addr, Duration::from_secs(5)).await;
    let response = client
        .send(
            Request::get("/api/v1/pods?watch=1")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut lines = BodyLines::new(response.into_body(), 1024);
    let err = lines.next_line().await.unwrap_err();
    assert!(err.is_reset(), "{err:?}");
    assert_eq!(err.reason(), ErrorReason::ConnectionReset);
}

#[tokio::test]
async fn refused_connection_is_a_connect_failure() {
    let addr = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let client = client_for(addr, Duration::from_secs(5)).await;
    let err = client.request_text(get("/api/v1/pods")).await.unwrap_err();
    assert!(is_connect_failure(&err), "{err:?}");
    assert_eq!(classify(&err), ErrorReason::ConnectionFailed);
}

#[tokio::test]
async fn requests_carry_the_configured_user_agent() {
    let server = serve(Script::EchoUserAgent).await;
    let client = client_for(server.addr, Duration::from_secs(5)).await;
    let agent = client.request_text(get("/version")).await.unwrap();
    assert_eq!(agent, "watchpool-test/1");
}

#[tokio::test]
async fn https_cluster_url_speaks_tls() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let first_bytes = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 3];
        socket.read_exact(&mut buf).await.unwrap();
        buf
    });
    let config = kube::Config::new(format!("https://{addr}").parse().unwrap());
    let client = build_client(config, &options(Duration::from_secs(5)))
        .await
        .unwrap();
    let err = client.request_text(get("/version")).await.unwrap_err();
    // A TLS record of type handshake (0x16), version 3.x: a ClientHello, not plain HTTP.
    let bytes = first_bytes.await.unwrap();
    assert_eq!(bytes[0], 0x16, "{bytes:?}");
    assert_eq!(bytes[1], 0x03, "{bytes:?}");
    assert_eq!(classify(&err), ErrorReason::ConnectionFailed, "{err:?}");
}

#[tokio::test]
async fn slow_drip_over_a_connection_still_hits_the_per_line_deadline() {
    let server = serve(Script::Drip {
        every: Duration::from_millis(20),
    })
    .await;
    let client = client_for(server.addr, Duration::from_secs(5)).await;
    let response = client
        .send(
            Request::get("/api/v1/pods?watch=1")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut lines = BodyLines::new(response.into_body(), 1024);
    let idle = Duration::from_millis(400);
    let started = Instant::now();
    let outcome = tokio::time::timeout(idle, lines.next_line()).await;
    assert!(
        outcome.is_err(),
        "the deadline fires although bytes keep coming"
    );
    assert!(started.elapsed() < idle + Duration::from_millis(300));
    // Bytes did arrive meanwhile, and stay buffered in the reader (not lost, not unbounded).
    assert!(lines.buffered() > 0 && lines.buffered() <= 1024);
}

#[tokio::test]
async fn endless_line_over_a_connection_is_refused_with_bounded_memory() {
    let server = serve(Script::Drip {
        every: Duration::from_millis(1),
    })
    .await;
    let client = client_for(server.addr, Duration::from_secs(5)).await;
    let response = client
        .send(
            Request::get("/api/v1/pods?watch=1")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut lines = BodyLines::new(response.into_body(), 64);
    let err = tokio::time::timeout(Duration::from_secs(5), lines.next_line())
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(err.reason(), ErrorReason::EventTooLarge);
    assert_eq!(lines.buffered(), 0);
}

#[tokio::test]
async fn client_lists_and_watches_through_the_emulator() {
    use futures::StreamExt;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::{Api, ObjectMeta, PostParams, WatchEvent, WatchParams};

    let emulator = kube_emulator::Emulator::start(kube_emulator::EmulatorConfig::default())
        .await
        .unwrap();
    let config = kube::Config::new(emulator.url().parse().unwrap());
    let client = build_client(config, &options(Duration::from_secs(5)))
        .await
        .unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let named = |name: &str| ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        ..ConfigMap::default()
    };
    api.create(&PostParams::default(), &named("first"))
        .await
        .unwrap();
    let list = api.list(&Default::default()).await.unwrap();
    assert!(
        list.items
            .iter()
            .any(|c| c.metadata.name.as_deref() == Some("first"))
    );
    let version = list.metadata.resource_version.unwrap();
    let mut events = api
        .watch(&WatchParams::default().timeout(10), &version)
        .await
        .unwrap()
        .boxed();
    api.create(&PostParams::default(), &named("second"))
        .await
        .unwrap();
    let added = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(event) = events.next().await {
            if let WatchEvent::Added(cm) = event.unwrap() {
                return cm.metadata.name;
            }
        }
        None
    })
    .await
    .unwrap();
    assert_eq!(added.as_deref(), Some("second"));
    drop(events);
    emulator.shutdown().await;
}

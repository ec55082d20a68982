//! Helpers shared by the integration tests: an emulator with a kube-rs client, a test CRD,
//! and polling with a deadline.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)] // test helpers: a panic is a test failure

use std::time::{Duration, Instant};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, CustomResource, CustomResourceExt};
use kube_emulator::{Emulator, EmulatorConfig, RequestRecord};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The spec of the test custom resource.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "ex.dev",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus",
    shortname = "wd"
)]
#[kube(printcolumn = r#"{"name":"Size","type":"integer","jsonPath":".spec.size"}"#)]
pub struct WidgetSpec {
    pub size: i64,
    #[serde(default)]
    pub color: String,
}

/// Its status.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct WidgetStatus {
    pub ready: bool,
    #[serde(default)]
    pub observed: i64,
}

/// A config with short intervals for tests.
pub fn test_config() -> EmulatorConfig {
    EmulatorConfig {
        bookmark_interval: Duration::from_millis(500),
        ..EmulatorConfig::default()
    }
}

/// A kube-rs client for an emulator.
pub async fn client_for(emu: &Emulator) -> Client {
    let kc = Kubeconfig::from_yaml(&emu.kubeconfig_yaml()).unwrap();
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap();
    Client::try_from(config).unwrap()
}

/// An emulator with the test config and a client.
pub async fn start() -> (Emulator, Client) {
    start_with(test_config()).await
}

/// An emulator with a config and a client.
pub async fn start_with(config: EmulatorConfig) -> (Emulator, Client) {
    let emu = Emulator::start(config).await.unwrap();
    let client = client_for(&emu).await;
    (emu, client)
}

/// Installs the Widget CRD and returns it.
pub async fn install_widget_crd(client: &Client) -> CustomResourceDefinition {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &Widget::crd())
        .await
        .unwrap()
}

/// Polls `f` every 20 ms until it is true; panics after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Requests of one verb on one resource.
pub fn requests_of(emu: &Emulator, verb: &str, resource: &str) -> Vec<RequestRecord> {
    emu.requests()
        .into_iter()
        .filter(|r| r.verb == verb && r.resource == resource)
        .collect()
}

/// A raw HTTP/1.1 exchange on a fresh connection (`Connection: close`): sends the request and
/// reads until EOF or `timeout`. Returns the raw bytes and whether EOF was reached.
pub async fn raw_exchange(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
    timeout: Duration,
) -> (Vec<u8>, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    if let Some(b) = body {
        req.push_str(b);
    }
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = [0u8; 65536];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return (out, false),
            Ok(Ok(0)) => return (out, true),
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => return (out, true),
        }
    }
}

/// Status code, headers (lower-cased names) and de-chunked body of a raw response.
pub fn parse_response(raw: &[u8]) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let text_end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("complete headers");
    let head = String::from_utf8_lossy(&raw[..text_end]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[text_end + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        let mut out = Vec::new();
        let mut rest = &body[..];
        while let Some(i) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = usize::from_str_radix(std::str::from_utf8(&rest[..i]).unwrap().trim(), 16)
                .unwrap_or(0);
            if size == 0 || rest.len() < i + 2 + size {
                out.extend_from_slice(
                    &rest[(i + 2).min(rest.len())..(i + 2 + size).min(rest.len())],
                );
                break;
            }
            out.extend_from_slice(&rest[i + 2..i + 2 + size]);
            rest = &rest[(i + 4 + size).min(rest.len())..];
        }
        body = out;
    }
    (status, headers, body)
}

/// True when a raw chunked response ended with its terminating chunk (a clean end).
pub fn ended_cleanly(raw: &[u8]) -> bool {
    raw.ends_with(b"0\r\n\r\n")
}

/// Sends a JSON request through the raw helper and returns status and parsed body.
pub async fn raw_json(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let (raw, _) = raw_exchange(
        addr,
        method,
        path,
        &[("Content-Type", "application/json")],
        body,
        Duration::from_secs(10),
    )
    .await;
    let (status, _, body) = parse_response(&raw);
    let v = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    (status, v)
}

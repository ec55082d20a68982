//! Protobuf request bodies (kubectl's typed commands, helm's release Secrets) over HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a panic is a test failure

mod common;

use std::time::Duration;

use common::{parse_response, start};

fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return out;
        }
        out.push(b | 0x80);
    }
}

fn field(n: u64, b: &[u8]) -> Vec<u8> {
    let mut out = varint(n << 3 | 2);
    out.extend(varint(b.len() as u64));
    out.extend_from_slice(b);
    out
}

fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let mut tm = field(1, api_version.as_bytes());
    tm.extend(field(2, kind.as_bytes()));
    let mut out = b"k8s\0".to_vec();
    out.extend(field(1, &tm));
    out.extend(field(2, raw));
    out
}

async fn send(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/vnd.kubernetes.protobuf\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let (status, _, body) = parse_response(&raw);
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

#[tokio::test]
async fn protobuf_secret_create_update_and_delete_work_like_json() {
    let (emu, _client) = start().await;
    let meta = |labels: &[(&str, &str)]| {
        let mut m = field(1, b"sh.helm.release.v1.demo.v1");
        for (k, v) in labels {
            let mut e = field(1, k.as_bytes());
            e.extend(field(2, v.as_bytes()));
            m.extend(field(11, &e));
        }
        m
    };
    let secret = |status: &str| {
        let mut raw = field(1, &meta(&[("owner", "helm"), ("status", status)]));
        let mut e = field(1, b"release");
        e.extend(field(2, b"\x1f\x8b payload"));
        raw.extend(field(2, &e));
        raw.extend(field(3, b"helm.sh/release.v1"));
        envelope("v1", "Secret", &raw)
    };
    let (status, created) = send(
        emu.addr(),
        "POST",
        "/api/v1/namespaces/default/secrets",
        &secret("pending-install"),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["type"], "helm.sh/release.v1");
    assert_eq!(created["data"]["release"], "H4sgcGF5bG9hZA==");
    // helm's PUT carries no resourceVersion: an unconditional update of a built-in.
    let (status, updated) = send(
        emu.addr(),
        "PUT",
        "/api/v1/namespaces/default/secrets/sh.helm.release.v1.demo.v1",
        &secret("deployed"),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["metadata"]["labels"]["status"], "deployed");
    // DELETE with protobuf DeleteOptions.
    let opts = envelope("meta.k8s.io/v1", "DeleteOptions", &field(4, b"Background"));
    let (status, _) = send(
        emu.addr(),
        "DELETE",
        "/api/v1/namespaces/default/secrets/sh.helm.release.v1.demo.v1",
        &opts,
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        emu.get("v1", "Secret", "default", "sh.helm.release.v1.demo.v1")
            .is_err()
    );
    // Kinds without a decoder are 415.
    let (status, v) = send(
        emu.addr(),
        "POST",
        "/apis/apps/v1/namespaces/default/deployments",
        &envelope("apps/v1", "Deployment", &[]),
    )
    .await;
    assert_eq!(
        (status, v["reason"].as_str()),
        (415, Some("UnsupportedMediaType"))
    );
}

#[tokio::test]
async fn protobuf_namespace_create_and_secret_type_default() {
    let (emu, _client) = start().await;
    let ns = envelope("v1", "Namespace", &field(1, &field(1, b"pb-ns")));
    let (status, v) = send(emu.addr(), "POST", "/api/v1/namespaces", &ns).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["status"]["phase"], "Active");
    let secret = envelope("v1", "Secret", &field(1, &field(1, b"plain")));
    let (status, v) = send(
        emu.addr(),
        "POST",
        "/api/v1/namespaces/pb-ns/secrets",
        &secret,
    )
    .await;
    assert_eq!(status, 201);
    assert_eq!(v["type"], "Opaque", "the server defaults a Secret's type");
}

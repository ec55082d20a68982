//! HTTP plumbing: the response body (full or streamed, abortable), query parsing, path routing
//! and JSON/Status responses.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body::{Frame, SizeHint};
use serde_json::Value;
use tokio::sync::mpsc;

use crate::status::ApiError;

/// The error a streamed body yields to abort its connection (no terminating chunk).
#[derive(Debug)]
pub struct StreamAbort;

impl std::fmt::Display for StreamAbort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("stream aborted")
    }
}

impl std::error::Error for StreamAbort {}

/// One chunk of a streamed body, or the order to abort the connection.
pub type StreamItem = Result<Bytes, StreamAbort>;

/// A response body: a complete buffer or a stream fed by a task.
pub enum Body {
    /// The whole body (taken on first poll).
    Full(Option<Bytes>),
    /// Chunks from a channel; the channel closing ends the body cleanly.
    Stream(mpsc::Receiver<StreamItem>),
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = StreamAbort;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StreamAbort>>> {
        match self.get_mut() {
            Body::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Body::Stream(rx) => rx.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data))),
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, Body::Full(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Body::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            Body::Full(None) => SizeHint::with_exact(0),
            Body::Stream(_) => SizeHint::default(),
        }
    }
}

/// A response with a byte body and content type.
pub fn bytes_response(code: u16, content_type: &str, body: Bytes) -> Response<Body> {
    let mut r = Response::new(Body::Full(Some(body)));
    *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    r
}

/// A JSON response.
pub fn json_response(code: u16, v: &Value) -> Response<Body> {
    json_response_ct(code, "application/json", v)
}

/// A JSON response with a specific content type.
pub fn json_response_ct(code: u16, content_type: &str, v: &Value) -> Response<Body> {
    let body = serde_json::to_vec(v).unwrap_or_default();
    bytes_response(code, content_type, Bytes::from(body))
}

/// A `metav1.Status` error response (or plain text), with `Retry-After` when set.
pub fn error_response(e: &ApiError) -> Response<Body> {
    let mut r = if e.plain_text {
        bytes_response(
            e.code,
            "text/plain; charset=utf-8",
            Bytes::from(format!("{}\n", e.message)),
        )
    } else {
        json_response(e.code, &e.to_status())
    };
    if let Some(secs) = e.retry_after
        && let Ok(v) = HeaderValue::from_str(&secs.to_string())
    {
        r.headers_mut().insert(header::RETRY_AFTER, v);
    }
    r
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A tolerant query string: `?&a=1&&b=` parses to `a=1`, `b=`.
#[derive(Clone, Debug, Default)]
pub struct Query(Vec<(String, String)>);

impl Query {
    /// Parses a raw query string.
    pub fn parse(q: &str) -> Self {
        Query(
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (percent_decode(k), percent_decode(v)),
                    None => (percent_decode(p), String::new()),
                })
                .collect(),
        )
    }

    /// The first value of a parameter.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    /// The first non-empty value of a parameter.
    pub fn non_empty(&self, k: &str) -> Option<&str> {
        self.get(k).filter(|v| !v.is_empty())
    }

    /// True for `true` or `1`.
    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true" | "1" | "True"))
    }
}

/// What a path names.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    /// `/version`.
    Version,
    /// `/healthz`, `/readyz`, `/livez`.
    Health,
    /// `/api`.
    Api,
    /// `/apis`.
    Apis,
    /// `/apis/{group}`.
    ApiGroup(String),
    /// `/api/v1` or `/apis/{group}/{version}`.
    GroupVersion(String, String),
    /// `/openapi/v3`.
    OpenApiRoot,
    /// `/openapi/v3/api/v1`, `/openapi/v3/apis/{g}/{v}`.
    OpenApiGv(String, String),
    /// A resource path.
    Resource {
        /// API group.
        group: String,
        /// Version.
        version: String,
        /// Plural.
        plural: String,
        /// Namespace from the path.
        namespace: Option<String>,
        /// Object name.
        name: Option<String>,
        /// Subresource.
        sub: Option<String>,
    },
    /// Anything else.
    NotFound,
}

fn resource_target(group: &str, version: &str, rest: &[&str]) -> Target {
    let mut rest = rest;
    let mut namespace = None;
    if rest.len() >= 3
        && rest[0] == "namespaces"
        && !(group.is_empty() && matches!(rest[2], "status" | "finalize"))
    {
        namespace = Some(rest[1].to_string());
        rest = &rest[2..];
    }
    if rest.is_empty() || rest.len() > 3 {
        return Target::NotFound;
    }
    Target::Resource {
        group: group.to_string(),
        version: version.to_string(),
        plural: rest[0].to_string(),
        namespace,
        name: rest.get(1).map(|s| percent_decode(s)),
        sub: rest.get(2).map(|s| s.to_string()),
    }
}

/// Routes a path.
pub fn route(path: &str) -> Target {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => Target::Version,
        ["healthz" | "readyz" | "livez", ..] => Target::Health,
        ["api"] => Target::Api,
        ["api", "v1"] => Target::GroupVersion(String::new(), "v1".into()),
        ["api", "v1", rest @ ..] => resource_target("", "v1", rest),
        ["apis"] => Target::Apis,
        ["apis", g] => Target::ApiGroup(g.to_string()),
        ["apis", g, v] => Target::GroupVersion(g.to_string(), v.to_string()),
        ["apis", g, v, rest @ ..] => resource_target(g, v, rest),
        ["openapi", "v3"] => Target::OpenApiRoot,
        ["openapi", "v3", "api", "v1"] => Target::OpenApiGv(String::new(), "v1".into()),
        ["openapi", "v3", "apis", g, v] => Target::OpenApiGv(g.to_string(), v.to_string()),
        _ => Target::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parsing_tolerates_empty_pairs_and_decodes() {
        let q = Query::parse("&watch=true&&labelSelector=app+in+%28a%2Cb%29&fieldSelector=&x");
        assert!(q.flag("watch"));
        assert_eq!(q.get("labelSelector"), Some("app in (a,b)"));
        assert_eq!(q.get("fieldSelector"), Some(""));
        assert_eq!(q.non_empty("fieldSelector"), None);
        assert_eq!(q.get("x"), Some(""));
    }

    #[test]
    fn routes_distinguish_namespace_subresources_from_namespaced_collections() {
        assert_eq!(
            route("/api/v1/namespaces/default/status"),
            Target::Resource {
                group: "".into(),
                version: "v1".into(),
                plural: "namespaces".into(),
                namespace: None,
                name: Some("default".into()),
                sub: Some("status".into())
            }
        );
        assert_eq!(
            route("/api/v1/namespaces/default/configmaps/x"),
            Target::Resource {
                group: "".into(),
                version: "v1".into(),
                plural: "configmaps".into(),
                namespace: Some("default".into()),
                name: Some("x".into()),
                sub: None
            }
        );
        assert_eq!(
            route("/apis/ex.dev/v1/widgets"),
            Target::Resource {
                group: "ex.dev".into(),
                version: "v1".into(),
                plural: "widgets".into(),
                namespace: None,
                name: None,
                sub: None
            }
        );
        assert_eq!(
            route("/openapi/v3/apis/apps/v1"),
            Target::OpenApiGv("apps".into(), "v1".into())
        );
        assert_eq!(route("/apis/apps"), Target::ApiGroup("apps".into()));
        assert_eq!(route("/nope"), Target::NotFound);
    }
}

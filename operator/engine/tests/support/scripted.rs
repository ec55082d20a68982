//! A tiny scripted HTTP server on 127.0.0.1 for faults that need exact control of the wire.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// The body type scripted handlers answer with.
pub type ScriptBody = BoxBody<Bytes, std::io::Error>;

/// One request seen by the scripted server.
#[derive(Clone, Debug)]
pub struct Seen {
    pub at: Instant,
    pub path: String,
    pub query: String,
}

impl Seen {
    /// True for watch requests.
    pub fn is_watch(&self) -> bool {
        self.query.contains("watch=true")
    }
}

/// A running scripted server; stops when dropped.
pub struct Scripted {
    pub url: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Scripted {
    /// Requests seen so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// A JSON response.
pub fn json(code: u16, body: &str) -> http::Response<ScriptBody> {
    http::Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(
            Full::new(Bytes::from(body.to_owned()))
                .map_err(|never: Infallible| match never {})
                .boxed(),
        )
        .unwrap()
}

/// The discovery document of the core group with ConfigMaps.
pub const CORE_V1: &str = r#"{"kind":"APIResourceList","groupVersion":"v1","resources":[{"name":"configmaps","namespaced":true,"kind":"ConfigMap","verbs":["list","watch","get"]}]}"#;

/// An empty ConfigMap list at resourceVersion 1.
pub const EMPTY_LIST: &str =
    r#"{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"1"},"items":[]}"#;

/// Starts a server answering each request with `handler(path, query)`.
pub async fn start<F>(handler: F) -> Scripted
where
    F: Fn(&str, &str) -> http::Response<ScriptBody> + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler = Arc::new(handler);
    let seen_task = seen.clone();
    let task = tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let handler = handler.clone();
            let seen = seen_task.clone();
            conns.spawn(async move {
                let service = service_fn(move |req: http::Request<Incoming>| {
                    let path = req.uri().path().to_owned();
                    let query = req.uri().query().unwrap_or("").to_owned();
                    seen.lock().unwrap().push(Seen {
                        at: Instant::now(),
                        path: path.clone(),
                        query: query.clone(),
                    });
                    let response = handler(&path, &query);
                    async move { Ok::<_, Infallible>(response) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Scripted {
        url: format!("http://{addr}"),
        seen,
        task,
    }
}

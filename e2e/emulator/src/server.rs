//! The HTTP server: accept loop (with restarts), connections, and the request handlers for
//! discovery, OpenAPI, resources, watches and the `/emulator/` control API.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::{Method, Request, Response, header};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{mpsc, watch};

use crate::EmulatorConfig;
use crate::discovery;
use crate::faults::{
    ErrorBody, Fault, FaultSet, FaultSpec, FutureRvPolicy, MatchContext, WatchListMode,
};
use crate::http::{
    Body, Query, Target, bytes_response, error_response, json_response, json_response_ct, route,
};
use crate::openapi;
use crate::patch::PatchKind;
use crate::registry::ResourceInfo;
use crate::reqlog::{RequestLog, RequestRecord};
use crate::selector::{FieldSelector, LabelSelector};
use crate::status::ApiError;
use crate::store::{CrdMode, DeleteOpts, Store, WatchFrom, WatchStartError, WriteOpts};
use crate::table::{self, IncludeObject};
use crate::watch::{Format, WatchTask, error_line, partial_metadata};

/// Largest request body accepted.
const MAX_BODY: usize = 64 << 20;

/// Orders to the accept loop.
pub(crate) enum Ctrl {
    Restart { down_ms: u64 },
}

/// State shared by the accept loop, every connection and the handles.
pub(crate) struct Shared {
    pub(crate) store: Arc<Store>,
    pub(crate) faults: Arc<FaultSet>,
    pub(crate) log: Arc<RequestLog>,
    pub(crate) config: EmulatorConfig,
    pub(crate) addr: SocketAddr,
    /// Bumped to close every open connection.
    pub(crate) kill: watch::Sender<u64>,
    pub(crate) ctrl: mpsc::UnboundedSender<Ctrl>,
    pub(crate) shutting_down: AtomicBool,
}

impl Shared {
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Carries out an action fault (compact, restart); returns false for other faults.
    pub(crate) fn run_action(&self, spec: &FaultSpec) -> bool {
        match &spec.fault {
            Fault::Compact {
                keep_last_n,
                below_rv,
            } => self.store.compact(*keep_last_n, *below_rv),
            Fault::Restart { down_ms, rv } => {
                self.store.restart_rv(*rv);
                let _ = self.ctrl.send(Ctrl::Restart { down_ms: *down_ms });
            }
            _ => return false,
        }
        self.log.push(RequestRecord {
            time: now_millis(),
            method: "FAULT".into(),
            path: format!("/emulator/faults/{}", spec.fault.name()),
            faults: vec![spec.fault.name().to_string()],
            ..Default::default()
        });
        true
    }
}

fn now_millis() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

pub(crate) fn bind_reuse(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

/// The accept loop: serves until `stop` flips; restarts on order.
pub(crate) async fn accept_loop(
    shared: Arc<Shared>,
    mut listener: TcpListener,
    mut ctrl: mpsc::UnboundedReceiver<Ctrl>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(serve_connection(shared.clone(), stream));
                }
                Err(e) => {
                    // Out of descriptors and the like: pause instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            order = ctrl.recv() => {
                let Some(Ctrl::Restart { down_ms }) = order else { break };
                shared.kill.send_modify(|g| *g += 1);
                drop(listener);
                tokio::select! {
                    _ = tokio::time::sleep(crate::faults::bounded_ms(down_ms)) => {}
                    _ = stop.changed() => break,
                }
                let mut rebound = None;
                for _ in 0..200 {
                    match bind_reuse(shared.addr) {
                        Ok(l) => {
                            rebound = Some(l);
                            break;
                        }
                        Err(_) => tokio::time::sleep(Duration::from_millis(25)).await,
                    }
                }
                match rebound {
                    Some(l) => listener = l,
                    None => {
                        tracing::error!(addr = %shared.addr, "could not listen again after a restart");
                        break;
                    }
                }
            }
            _ = stop.changed() => break,
        }
    }
    shared.kill.send_modify(|g| *g += 1);
}

/// Set by a watch that must end with a TCP reset: the connection's socket then closes with a
/// zero linger (RST) instead of a FIN.
#[derive(Clone, Debug, Default)]
pub(crate) struct ConnReset(Arc<AtomicBool>);

impl ConnReset {
    pub(crate) fn request(&self) {
        self.0.store(true, Ordering::Release);
    }
}

/// A TCP stream that resets instead of closing when its [`ConnReset`] was requested.
struct ConnIo {
    inner: tokio::net::TcpStream,
    reset: ConnReset,
}

impl Drop for ConnIo {
    fn drop(&mut self) {
        if self.reset.0.load(Ordering::Acquire) {
            let _ = self.inner.set_zero_linger();
        }
    }
}

impl tokio::io::AsyncRead for ConnIo {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for ConnIo {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

async fn serve_connection(shared: Arc<Shared>, stream: tokio::net::TcpStream) {
    let mut kill = shared.kill.subscribe();
    let svc_shared = shared.clone();
    let reset = ConnReset::default();
    let conn_reset = reset.clone();
    let service = service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(conn_reset.clone());
        handle(svc_shared.clone(), req)
    });
    let io = ConnIo {
        inner: stream,
        reset,
    };
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(io), service);
    tokio::select! {
        _ = conn => {}
        _ = kill.changed() => {}
    }
}

struct Req {
    reset: Option<ConnReset>,
    method: Method,
    path: String,
    query: Query,
    raw_query: String,
    user_agent: String,
    accept: String,
    content_type: String,
    body: Incoming,
}

async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let t0 = Instant::now();
    let (parts, body) = req.into_parts();
    let hdr = |n: header::HeaderName| {
        parts
            .headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let r = Req {
        reset: parts.extensions.get::<ConnReset>().cloned(),
        method: parts.method.clone(),
        path: parts.uri.path().to_string(),
        query: Query::parse(&raw_query),
        raw_query,
        user_agent: hdr(header::USER_AGENT),
        accept: hdr(header::ACCEPT),
        content_type: hdr(header::CONTENT_TYPE),
        body,
    };
    if r.path == "/emulator" || r.path.starts_with("/emulator/") {
        return Ok(control(&shared, r).await);
    }
    let mut rec = RequestRecord {
        time: now_millis(),
        method: r.method.to_string(),
        path: r.path.clone(),
        query: r.raw_query.clone(),
        user_agent: r.user_agent.clone(),
        ..Default::default()
    };
    let (resp, task) = dispatch(&shared, r, &mut rec).await;
    rec.status = resp.status().as_u16();
    if task.is_none() {
        rec.duration_ms = t0.elapsed().as_millis() as u64;
    }
    let seq = shared.log.push(rec);
    if let Some(task) = task {
        tokio::spawn(task.run(seq));
    }
    Ok(resp)
}

fn parse_json_or_yaml(bytes: &[u8], yaml: bool) -> Result<Value, ApiError> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) => Ok(v),
        Err(e) if yaml => {
            let text = std::str::from_utf8(bytes)
                .map_err(|_| ApiError::bad_request("the body is not UTF-8"))?;
            serde_saphyr::from_str::<Value>(text).map_err(|ye| {
                ApiError::bad_request(format!("error decoding YAML: {ye} (as JSON: {e})"))
            })
        }
        Err(e) => Err(ApiError::bad_request(format!(
            "error decoding the request body: {e}"
        ))),
    }
}

async fn read_body(body: Incoming) -> Result<Bytes, ApiError> {
    let limited = http_body_util::Limited::new(body, MAX_BODY);
    match limited.collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(_) => Err(ApiError::new(
            413,
            "RequestEntityTooLarge",
            "the request body is too large or was cut",
        )),
    }
}

fn format_of(accept: &str, query: &Query) -> Format {
    if table::wants_table(accept) {
        Format::Table(IncludeObject::parse(query.get("includeObject")))
    } else if accept.contains("as=PartialObjectMetadata") {
        Format::Metadata
    } else {
        Format::Json
    }
}

const TABLE_CT: &str = "application/json;as=Table;v=v1;g=meta.k8s.io";

async fn dispatch(
    shared: &Arc<Shared>,
    r: Req,
    rec: &mut RequestRecord,
) -> (Response<Body>, Option<WatchTask>) {
    let target = route(&r.path);
    let resources = || shared.store.resources();
    let resp = match target {
        Target::Version => json_response(200, &discovery::version()),
        Target::Health => {
            bytes_response(200, "text/plain; charset=utf-8", Bytes::from_static(b"ok"))
        }
        Target::Api => {
            if discovery::wants_aggregated(&r.accept) {
                aggregated(&discovery::aggregated(&resources(), true))
            } else {
                json_response(200, &discovery::api_versions(&shared.addr.to_string()))
            }
        }
        Target::Apis => {
            if discovery::wants_aggregated(&r.accept) {
                aggregated(&discovery::aggregated(&resources(), false))
            } else {
                json_response(200, &discovery::api_group_list(&resources()))
            }
        }
        Target::ApiGroup(g) => match discovery::api_group(&resources(), &g) {
            Some(v) => json_response(200, &v),
            None => error_response(&ApiError::not_found_path()),
        },
        Target::GroupVersion(g, v) => match discovery::api_resource_list(&resources(), &g, &v) {
            Some(doc) => json_response(200, &doc),
            None => error_response(&ApiError::not_found_path()),
        },
        Target::OpenApiRoot => json_response(200, &openapi::root(&resources())),
        Target::OpenApiGv(g, v) => match openapi::group_version_doc(&g, &v, &resources()) {
            Some(doc) => json_response(200, &doc),
            None => error_response(&ApiError::not_found_path()),
        },
        Target::NotFound => error_response(&ApiError::not_found_path()),
        Target::Resource {
            group,
            version,
            plural,
            namespace,
            name,
            sub,
        } => {
            return resource_request(
                shared, r, rec, &group, &version, &plural, namespace, name, sub,
            )
            .await;
        }
    };
    (resp, None)
}

fn aggregated(doc: &Value) -> Response<Body> {
    let mut resp = json_response_ct(200, discovery::AGGREGATED_CONTENT_TYPE, doc);
    resp.headers_mut()
        .insert(header::VARY, http::HeaderValue::from_static("Accept"));
    resp
}

fn verb_of(method: &Method, has_name: bool, watch: bool) -> Option<&'static str> {
    Some(match (method.as_str(), has_name) {
        ("GET", true) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", false) => "create",
        ("PUT", true) => "update",
        ("PATCH", true) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return None,
    })
}

fn write_opts(q: &Query) -> WriteOpts {
    WriteOpts {
        dry_run: q.get("dryRun").is_some_and(|v| v == "All"),
        field_manager: q.non_empty("fieldManager").map(str::to_string),
        force: q.flag("force"),
        crd_mode: CrdMode::Immediate,
        field_validation: crate::prune::FieldValidation::parse(q.non_empty("fieldValidation")),
        warnings: Default::default(),
        skip_admission: false,
    }
}

fn selectors(
    shared: &Shared,
    res: &ResourceInfo,
    q: &Query,
) -> Result<(LabelSelector, FieldSelector), ApiError> {
    let labels = LabelSelector::parse(q.get("labelSelector").unwrap_or(""))
        .map_err(|e| ApiError::bad_request(format!("unable to parse requirement: {e}")))?;
    let fields = FieldSelector::parse(q.get("fieldSelector").unwrap_or(""), |f| {
        shared.store.field_allowed(res, f)
    })
    .map_err(ApiError::bad_request)?;
    Ok((labels, fields))
}

/// Delays a response; with `never`, withholds it until the fault `id` is removed (or for
/// ever, while the connection is being closed).
async fn apply_latency(shared: &Shared, id: u64, ms: u64, jitter_ms: u64, never: bool) {
    if never {
        let mut kill = shared.kill.subscribe();
        let mut changes = shared.faults.subscribe();
        loop {
            tokio::select! {
                _ = kill.changed() => {
                    // The connection is being closed; this future is dropped with it.
                    std::future::pending::<()>().await;
                }
                changed = changes.changed() => {
                    if changed.is_err() || !shared.faults.contains(id) {
                        return;
                    }
                }
            }
        }
    }
    let extra = if jitter_ms > 0 {
        rand::random_range(0..=jitter_ms)
    } else {
        0
    };
    tokio::time::sleep(crate::faults::bounded_ms(ms.saturating_add(extra))).await;
}

#[allow(clippy::too_many_arguments)]
async fn resource_request(
    shared: &Arc<Shared>,
    r: Req,
    rec: &mut RequestRecord,
    group: &str,
    version: &str,
    plural: &str,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
) -> (Response<Body>, Option<WatchTask>) {
    let Some(res) = shared.store.find(group, version, plural) else {
        return (error_response(&ApiError::not_found_path()), None);
    };
    if namespace.is_some() && !res.namespaced {
        return (error_response(&ApiError::not_found_path()), None);
    }
    let ns = namespace.clone().unwrap_or_default();
    let watch = r.query.flag("watch");
    let Some(verb) = verb_of(&r.method, name.is_some(), watch) else {
        return (error_response(&ApiError::method_not_allowed()), None);
    };
    // A namespaced resource addressed without a namespace is a cross-namespace list/watch only.
    if res.namespaced && namespace.is_none() && !matches!(verb, "list" | "watch") {
        return (error_response(&ApiError::not_found_path()), None);
    }
    if let Some(s) = &sub {
        if s != "status" || !res.status_subresource {
            return (error_response(&ApiError::not_found_path()), None);
        }
        if !matches!(verb, "get" | "update" | "patch") {
            return (error_response(&ApiError::method_not_allowed()), None);
        }
    }
    let name_s = name.clone().unwrap_or_default();
    rec.verb = verb.to_string();
    rec.group = res.group.clone();
    rec.resource = match &sub {
        Some(s) => format!("{}/{}", res.plural, s),
        None => res.plural.clone(),
    };
    rec.namespace = ns.clone();
    rec.name = name_s.clone();
    rec.watch = verb == "watch";
    // Faults that act on the request itself.
    let field_name = if name_s.is_empty() {
        r.query
            .get("fieldSelector")
            .and_then(|f| {
                f.split(',').find_map(|p| {
                    p.strip_prefix("metadata.name=")
                        .or_else(|| p.strip_prefix("metadata.name=="))
                })
            })
            .unwrap_or("")
            .to_string()
    } else {
        name_s.clone()
    };
    let ua = r.user_agent.clone();
    let ctx = MatchContext {
        verb,
        group: &res.group,
        resource: &res.plural,
        namespace: &ns,
        name: &field_name,
        user_agent: &ua,
    };
    let faults = &shared.faults;
    if let Some((_, f)) = faults.take(&ctx, |f| matches!(f, Fault::Auth {}), &[]) {
        rec.faults.push(f.name().into());
        let e = ApiError::forbidden(&res, &name_s, verb, &ns);
        return (error_response(&e), None);
    }
    if let Some((
        id,
        Fault::Latency {
            ms,
            jitter_ms,
            headers_never,
        },
    )) = faults.take(&ctx, |f| matches!(f, Fault::Latency { .. }), &[])
    {
        rec.faults.push("latency".into());
        apply_latency(shared, id, ms, jitter_ms, headers_never).await;
    }
    if let Some((
        _,
        Fault::HttpError {
            code,
            retry_after,
            body,
            message,
        },
    )) = faults.take(&ctx, |f| matches!(f, Fault::HttpError { .. }), &[])
    {
        rec.faults.push("http_error".into());
        let mut e = if code == 504
            && message
                .as_deref()
                .is_none_or(|m| m == "ResourceVersionTooLarge")
        {
            let current = shared.store.current_rv();
            ApiError::rv_too_large(current + 1, current)
        } else if code == 409 && message.is_none() && !name_s.is_empty() {
            ApiError::conflict(&res, &name_s)
        } else if code == 404 && message.is_none() && !name_s.is_empty() {
            ApiError::not_found(&res, &name_s)
        } else if code == 403 && message.is_none() {
            ApiError::forbidden(&res, &name_s, verb, &ns)
        } else {
            ApiError::for_code(code, message.as_deref())
        };
        if code == 429 && body == ErrorBody::Text {
            e.message = "Too many requests, please try again later.".into();
        }
        if let Some(s) = retry_after {
            e.retry_after = Some(s);
        } else if code == 429 && e.retry_after.is_none() {
            e.retry_after = Some(1);
        }
        e.plain_text = body == ErrorBody::Text;
        return (error_response(&e), None);
    }
    if matches!(verb, "create" | "update" | "patch" | "delete")
        && let Some((_, f)) = faults.take(&ctx, |f| matches!(f, Fault::ConflictNext { .. }), &[])
    {
        rec.faults.push(f.name().into());
        return (error_response(&ApiError::conflict(&res, &name_s)), None);
    }
    let result = match verb {
        "watch" => {
            return watch_request(shared, &r, rec, res.clone(), namespace, &name_s, &ctx).await;
        }
        "get" => get_request(shared, &r, &res, &ns, &name_s),
        "list" => list_request(shared, &r, rec, &res, namespace.as_deref(), &ctx).await,
        _ => {
            write_request(
                shared,
                r,
                rec,
                &res,
                &ns,
                &name_s,
                verb,
                sub.is_some(),
                &ctx,
            )
            .await
        }
    };
    match result {
        Ok(resp) => (resp, None),
        Err(e) => (error_response(&e), None),
    }
}

fn get_request(
    shared: &Shared,
    r: &Req,
    res: &ResourceInfo,
    ns: &str,
    name: &str,
) -> Result<Response<Body>, ApiError> {
    let obj = shared.store.get(res, ns, name)?;
    Ok(match format_of(&r.accept, &r.query) {
        Format::Json => json_response(200, &obj),
        Format::Metadata => json_response_ct(
            200,
            "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
            &partial_metadata(&obj),
        ),
        Format::Table(include) => {
            let rv = obj
                .pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or(Value::Null);
            let t = table::table(
                res,
                &[(*obj).clone()],
                include,
                json!({"resourceVersion": rv}),
                SystemTime::now(),
            );
            json_response_ct(200, TABLE_CT, &t)
        }
    })
}

/// The policy for a resourceVersion in the future; records the fault when one decided it.
fn future_policy(
    shared: &Shared,
    ctx: &MatchContext<'_>,
    rec: &mut RequestRecord,
) -> FutureRvPolicy {
    match shared
        .faults
        .take(ctx, |f| matches!(f, Fault::FutureRvPolicy { .. }), &[])
    {
        Some((_, Fault::FutureRvPolicy { policy })) => {
            rec.faults.push("future_rv_policy".into());
            policy
        }
        _ => FutureRvPolicy::Expire,
    }
}

async fn list_request(
    shared: &Shared,
    r: &Req,
    rec: &mut RequestRecord,
    res: &ResourceInfo,
    ns: Option<&str>,
    ctx: &MatchContext<'_>,
) -> Result<Response<Body>, ApiError> {
    let (labels, fields) = selectors(shared, res, &r.query)?;
    let limit = r
        .query
        .non_empty("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .filter(|l| *l > 0);
    let cont = r.query.non_empty("continue");
    let rv_param = r.query.non_empty("resourceVersion");
    let rv_match = r.query.non_empty("resourceVersionMatch");
    if let Some(rv) = rv_param
        && rv != "0"
    {
        let n: u64 = rv
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resource version \"{rv}\"")))?;
        let current = shared.store.current_rv();
        if rv_match == Some("Exact") && n != current {
            if n > current {
                return Err(ApiError::rv_too_large(n, current));
            }
            return Err(ApiError::expired(format!(
                "too old resource version: {n} ({current})"
            )));
        }
        if n > current {
            if future_policy(shared, ctx, rec) == FutureRvPolicy::Wait {
                let deadline = Instant::now() + Duration::from_secs(3);
                while shared.store.current_rv() < n && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            let current = shared.store.current_rv();
            if n > current {
                return Err(ApiError::rv_too_large(n, current));
            }
        }
    }
    let page = shared.store.list(res, ns, &labels, &fields, limit, cont)?;
    let mut md = json!({"resourceVersion": page.rv.to_string()});
    if !page.continue_token.is_empty() {
        md["continue"] = json!(page.continue_token);
    }
    if let Some(n) = page.remaining {
        md["remainingItemCount"] = json!(n);
    }
    Ok(match format_of(&r.accept, &r.query) {
        Format::Json => {
            let mut buf = Vec::with_capacity(256 + page.items.len() * 512);
            let head =
                json!({"kind": res.list_kind, "apiVersion": res.api_version(), "metadata": md});
            let head = serde_json::to_string(&head).unwrap_or_default();
            buf.extend_from_slice(&head.as_bytes()[..head.len().saturating_sub(1)]);
            buf.extend_from_slice(b",\"items\":[");
            for (i, item) in page.items.iter().enumerate() {
                if i > 0 {
                    buf.push(b',');
                }
                let _ = serde_json::to_writer(&mut buf, &**item);
            }
            buf.extend_from_slice(b"]}");
            bytes_response(200, "application/json", Bytes::from(buf))
        }
        Format::Metadata => {
            let items: Vec<Value> = page.items.iter().map(|o| partial_metadata(o)).collect();
            let body = json!({"kind": "PartialObjectMetadataList", "apiVersion": "meta.k8s.io/v1", "metadata": md, "items": items});
            json_response_ct(
                200,
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
                &body,
            )
        }
        Format::Table(include) => {
            let objs: Vec<Value> = page.items.iter().map(|o| (**o).clone()).collect();
            let t = table::table(res, &objs, include, md, SystemTime::now());
            json_response_ct(200, TABLE_CT, &t)
        }
    })
}

fn stream_response(content_type: &str) -> (Response<Body>, mpsc::Sender<crate::http::StreamItem>) {
    let (tx, rx) = mpsc::channel(64);
    let mut resp = Response::new(Body::Stream(rx));
    let h = resp.headers_mut();
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-cache, private"),
    );
    (resp, tx)
}

fn one_shot_stream(content_type: &str, line: Option<Bytes>) -> Response<Body> {
    let (resp, tx) = stream_response(content_type);
    if let Some(line) = line {
        let _ = tx.try_send(Ok(line));
    }
    drop(tx);
    resp
}

#[allow(clippy::too_many_arguments)]
async fn watch_request(
    shared: &Arc<Shared>,
    r: &Req,
    rec: &mut RequestRecord,
    res: Arc<ResourceInfo>,
    namespace: Option<String>,
    name: &str,
    ctx: &MatchContext<'_>,
) -> (Response<Body>, Option<WatchTask>) {
    let fail = |e: ApiError| (error_response(&e), None);
    let (labels, mut fields) = match selectors(shared, &res, &r.query) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    if !name.is_empty() {
        match FieldSelector::parse(&format!("metadata.name={name}"), |_| true) {
            Ok(f) if fields.is_empty() => fields = f,
            _ => {}
        }
    }
    let send_initial = r.query.flag("sendInitialEvents");
    let rv_match = r.query.non_empty("resourceVersionMatch");
    let mut watchlist_mode = WatchListMode::Full;
    if send_initial {
        if let Some((_, Fault::Watchlist { mode })) =
            shared
                .faults
                .take(ctx, |f| matches!(f, Fault::Watchlist { .. }), &[])
        {
            rec.faults.push("watchlist".into());
            watchlist_mode = mode;
        }
        if watchlist_mode == WatchListMode::Reject {
            return fail(ApiError::unprocessable(
                "ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled",
            ));
        }
        if rv_match != Some("NotOlderThan") {
            return fail(ApiError::unprocessable(
                "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
            ));
        }
    } else if rv_match.is_some() {
        return fail(ApiError::unprocessable(
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided",
        ));
    }
    let rv = r.query.non_empty("resourceVersion").unwrap_or("");
    let from = if send_initial || rv.is_empty() || rv == "0" {
        WatchFrom::Current
    } else {
        match rv.parse::<u64>() {
            Ok(n) => WatchFrom::Exact(n),
            Err(_) => {
                return fail(ApiError::bad_request(format!(
                    "invalid resource version \"{rv}\""
                )));
            }
        }
    };
    let format = format_of(&r.accept, &r.query);
    let ct = if matches!(format, Format::Table(_)) {
        TABLE_CT
    } else {
        "application/json"
    };
    if let Some((_, f)) = shared
        .faults
        .take(ctx, |f| matches!(f, Fault::EmptyWatch {}), &[])
    {
        rec.faults.push(f.name().into());
        rec.watch = false;
        rec.watch_end = Some("empty".into());
        return (one_shot_stream(ct, None), None);
    }
    let mut wait_for_rv = None;
    let mut future_wait = false;
    if let WatchFrom::Exact(n) = from
        && n > shared.store.current_rv()
        && future_policy(shared, ctx, rec) == FutureRvPolicy::Wait
    {
        future_wait = true;
        wait_for_rv = Some(n);
    }
    let start = match shared.store.watch_start(
        &res,
        namespace.as_deref(),
        from,
        &labels,
        &fields,
        future_wait,
    ) {
        Ok(s) => s,
        Err(WatchStartError::TooOld { requested, oldest }) => {
            rec.watch = false;
            rec.watch_end = Some("expired".into());
            let line = error_line(
                410,
                &format!("too old resource version: {requested} ({oldest})"),
            );
            return (one_shot_stream(ct, Some(line)), None);
        }
        Err(WatchStartError::TooNew { requested, current }) => {
            rec.watch = false;
            rec.watch_end = Some("expired".into());
            let line = error_line(
                410,
                &format!("too old resource version: {requested} ({current})"),
            );
            return (one_shot_stream(ct, Some(line)), None);
        }
    };
    let mut bookmark_interval = None;
    let mut bookmarks = r.query.flag("allowWatchBookmarks");
    if let Some((_, Fault::BookmarkInterval { secs, off })) =
        shared
            .faults
            .take(ctx, |f| matches!(f, Fault::BookmarkInterval { .. }), &[])
    {
        rec.faults.push("bookmark_interval".into());
        if off {
            bookmarks = false;
        }
        if let Some(s) = secs {
            bookmark_interval = Some(crate::faults::bounded_secs(s).max(Duration::from_millis(10)));
        }
    }
    let mut slow_limit = None;
    if let Some((_, Fault::SlowWatchBuffer { events })) =
        shared
            .faults
            .take(ctx, |f| matches!(f, Fault::SlowWatchBuffer { .. }), &[])
    {
        rec.faults.push("slow_watch_buffer".into());
        slow_limit = Some(events);
    }
    let timeout = r
        .query
        .non_empty("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        // 0 means "not set", as on a real server.
        .filter(|t| *t > 0)
        .map(|t| crate::faults::bounded_ms(t.saturating_mul(1000)))
        .unwrap_or(shared.config.default_watch_timeout)
        .min(crate::faults::bounded_ms(u64::MAX));
    let (resp, tx) = stream_response(ct);
    let task = WatchTask {
        shared: shared.clone(),
        res,
        namespace: namespace.unwrap_or_default(),
        name: ctx.name.to_string(),
        user_agent: r.user_agent.clone(),
        labels,
        fields,
        format,
        start,
        initial_events_end: send_initial && watchlist_mode == WatchListMode::Full,
        bookmarks,
        bookmark_interval,
        timeout,
        wait_for_rv,
        slow_limit,
        tx,
        started: std::time::Instant::now(),
        reset: r.reset.clone(),
    };
    (resp, Some(task))
}

fn delete_opts(q: &Query, body: &Value) -> DeleteOpts {
    DeleteOpts {
        dry_run: q.get("dryRun").is_some_and(|v| v == "All")
            || body["dryRun"]
                .as_array()
                .is_some_and(|a| a.iter().any(|v| v == "All")),
        propagation: q
            .non_empty("propagationPolicy")
            .map(str::to_string)
            .or_else(|| body["propagationPolicy"].as_str().map(str::to_string))
            .or_else(|| match body["orphanDependents"].as_bool() {
                Some(true) => Some("Orphan".into()),
                _ => None,
            }),
        precondition_uid: body
            .pointer("/preconditions/uid")
            .and_then(Value::as_str)
            .map(str::to_string),
        precondition_rv: body
            .pointer("/preconditions/resourceVersion")
            .and_then(Value::as_str)
            .map(str::to_string),
    }
}

fn crd_mode(
    shared: &Shared,
    ctx: &MatchContext<'_>,
    res: &ResourceInfo,
    rec: &mut RequestRecord,
) -> CrdMode {
    if res.plural != "customresourcedefinitions" {
        return CrdMode::Immediate;
    }
    if let Some((_, f)) = shared
        .faults
        .take(ctx, |f| matches!(f, Fault::CrdNamesConflict {}), &[])
    {
        rec.faults.push(f.name().into());
        return CrdMode::NamesConflict;
    }
    if let Some((_, Fault::CrdEstablishDelay { ms })) =
        shared
            .faults
            .take(ctx, |f| matches!(f, Fault::CrdEstablishDelay { .. }), &[])
    {
        rec.faults.push("crd_establish_delay".into());
        return CrdMode::Delay(ms);
    }
    CrdMode::Immediate
}

#[allow(clippy::too_many_arguments)]
async fn write_request(
    shared: &Arc<Shared>,
    r: Req,
    rec: &mut RequestRecord,
    res: &Arc<ResourceInfo>,
    ns: &str,
    name: &str,
    verb: &str,
    status_sub: bool,
    ctx: &MatchContext<'_>,
) -> Result<Response<Body>, ApiError> {
    let q = r.query.clone();
    let content_type = r.content_type.clone();
    let bytes = read_body(r.body).await?;
    let protobuf = content_type.contains("protobuf");
    // The body as JSON: protobuf (kubectl's typed commands, helm), YAML or JSON.
    let parse_body = |yaml: bool| -> Result<Value, ApiError> {
        if protobuf {
            crate::protobuf::decode(&bytes).map_err(|e| {
                ApiError::new(
                    415,
                    "UnsupportedMediaType",
                    format!("the body of the request was in an unknown format ({e}) - accepted media types include: application/json, application/yaml, application/vnd.kubernetes.protobuf"),
                )
            })
        } else {
            parse_json_or_yaml(&bytes, yaml)
        }
    };
    let mut opts = write_opts(&q);
    let store = &shared.store;
    match verb {
        "create" => {
            let body = parse_body(content_type.contains("yaml"))?;
            opts.crd_mode = crd_mode(shared, ctx, res, rec);
            let out = store.create(res, ns, body, &opts)?;
            auto_ready(shared, res, ctx, &out, rec);
            Ok(with_warnings(json_response(201, &out), &opts))
        }
        "update" => {
            let body = parse_body(content_type.contains("yaml"))?;
            let out = store.update(res, ns, name, body, &opts, status_sub)?;
            auto_ready(shared, res, ctx, &out, rec);
            Ok(with_warnings(json_response(200, &out), &opts))
        }
        "patch" => {
            let kind = PatchKind::from_content_type(&content_type)
                .ok_or_else(ApiError::unsupported_media_type)?;
            let body = parse_json_or_yaml(&bytes, kind == PatchKind::Apply)?;
            if kind == PatchKind::Apply {
                opts.crd_mode = crd_mode(shared, ctx, res, rec);
            }
            let (code, out) = store.patch(res, ns, name, kind, body, &opts, status_sub)?;
            auto_ready(shared, res, ctx, &out, rec);
            Ok(with_warnings(json_response(code, &out), &opts))
        }
        "delete" => {
            let body = if bytes.is_empty() {
                json!({})
            } else {
                parse_body(false)?
            };
            let out = store.delete(res, ns, name, &delete_opts(&q, &body))?;
            Ok(json_response(200, &out))
        }
        "deletecollection" => {
            let body = if bytes.is_empty() {
                json!({})
            } else {
                parse_body(false)?
            };
            let (labels, fields) = selectors(shared, res, &q)?;
            let scope = if res.namespaced { Some(ns) } else { None };
            let out =
                store.delete_collection(res, scope, &labels, &fields, &delete_opts(&q, &body))?;
            Ok(json_response(200, &out))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// Adds a `Warning: 299 - "…"` header per warning of the write.
fn with_warnings(mut resp: Response<Body>, opts: &WriteOpts) -> Response<Body> {
    let warnings = opts.warnings.lock().map(|w| w.clone()).unwrap_or_default();
    for w in warnings {
        let escaped = w.replace('\\', "\\\\").replace('"', "\\\"");
        if let Ok(v) = http::HeaderValue::from_str(&format!("299 - \"{escaped}\"")) {
            resp.headers_mut().append(header::WARNING, v);
        }
    }
    resp
}

/// The `auto_ready` fault: after a workload's spec is written, fake a status that readiness
/// checks (kstatus, helm --wait) accept.
fn auto_ready(
    shared: &Arc<Shared>,
    res: &ResourceInfo,
    ctx: &MatchContext<'_>,
    obj: &Value,
    rec: &mut RequestRecord,
) {
    if !matches!(
        res.plural.as_str(),
        "deployments" | "replicasets" | "statefulsets" | "daemonsets" | "pods"
    ) {
        return;
    }
    if obj.pointer("/metadata/deletionTimestamp").is_some()
        || obj.get("kind").and_then(Value::as_str) != Some(res.kind.as_str())
    {
        return;
    }
    let kind = res.kind.clone();
    let Some((_, Fault::AutoReady { kinds })) =
        shared
            .faults
            .take(ctx, |f| matches!(f, Fault::AutoReady { .. }), &[])
    else {
        return;
    };
    if !kinds.is_empty() && !kinds.iter().any(|k| k.eq_ignore_ascii_case(&kind)) {
        return;
    }
    let generation = obj
        .pointer("/metadata/generation")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let replicas = obj
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1);
    let status = match res.plural.as_str() {
        "pods" => {
            json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"}]})
        }
        "daemonsets" => {
            json!({"observedGeneration": generation, "currentNumberScheduled": 1, "desiredNumberScheduled": 1,
                               "numberReady": 1, "updatedNumberScheduled": 1, "numberAvailable": 1, "numberMisscheduled": 0})
        }
        "statefulsets" => {
            json!({"observedGeneration": generation, "replicas": replicas, "readyReplicas": replicas,
                                 "currentReplicas": replicas, "updatedReplicas": replicas, "availableReplicas": replicas})
        }
        _ => {
            json!({"observedGeneration": generation, "replicas": replicas, "updatedReplicas": replicas,
                    "readyReplicas": replicas, "availableReplicas": replicas,
                    "conditions": [
                        {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                        {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]})
        }
    };
    if obj.get("status") == Some(&status) {
        return;
    }
    rec.faults.push("auto_ready".into());
    let ns = ctx.namespace.to_string();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let _ = shared.store.patch(
        res,
        &ns,
        &name,
        PatchKind::Merge,
        json!({"status": status}),
        &WriteOpts::default(),
        res.status_subresource,
    );
}

// ---------------------------------------------------------------------------------------------
// Control API

async fn control(shared: &Arc<Shared>, r: Req) -> Response<Body> {
    let path = r.path.trim_end_matches('/').to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let method = r.method.clone();
    match (method.as_str(), &segs[1..]) {
        ("GET", ["faults"]) => json_response(200, &json!(shared.faults.list())),
        ("POST", ["faults"]) => {
            let bytes = match read_body(r.body).await {
                Ok(b) => b,
                Err(e) => return error_response(&e),
            };
            let parsed: Result<Value, _> = serde_json::from_slice(&bytes);
            let specs: Result<Vec<FaultSpec>, String> = match parsed {
                Ok(Value::Array(items)) => items
                    .into_iter()
                    .map(|v| serde_json::from_value(v).map_err(|e| e.to_string()))
                    .collect(),
                Ok(v) => serde_json::from_value(v)
                    .map(|s| vec![s])
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            };
            match specs {
                Ok(specs) => {
                    let ids: Vec<u64> = specs.into_iter().map(|s| add_fault(shared, s)).collect();
                    if ids.len() == 1 {
                        json_response(200, &json!({"id": ids[0]}))
                    } else {
                        json_response(200, &json!({"ids": ids}))
                    }
                }
                Err(e) => error_response(&ApiError::bad_request(format!("invalid fault: {e}"))),
            }
        }
        ("DELETE", ["faults"]) => {
            shared.faults.clear();
            json_response(200, &json!({"cleared": true}))
        }
        ("DELETE", ["faults", id]) => match id.parse::<u64>() {
            Ok(id) if shared.faults.remove(id) => json_response(200, &json!({"removed": id})),
            _ => error_response(&ApiError::new(
                404,
                "NotFound",
                format!("fault {id} not found"),
            )),
        },
        ("GET", ["requests"]) => {
            let mut out = Vec::new();
            for rec in shared.log.records() {
                if serde_json::to_writer(&mut out, &rec).is_ok() {
                    out.push(b'\n');
                }
            }
            bytes_response(200, "application/x-ndjson", Bytes::from(out))
        }
        ("GET", ["stats"]) => {
            let mut stats = shared.log.stats();
            stats.resource_version = shared.store.current_rv();
            stats.objects = shared.store.object_count();
            json_response(200, &json!(stats))
        }
        ("POST", ["objects"]) => {
            let bytes = match read_body(r.body).await {
                Ok(b) => b,
                Err(e) => return error_response(&e),
            };
            let result = parse_json_or_yaml(&bytes, true)
                .and_then(|obj| crate::objects::upsert(&shared.store, obj));
            match result {
                Ok((code, v)) => json_response(code, &v),
                Err(e) => error_response(&e),
            }
        }
        _ => error_response(&ApiError::not_found_path()),
    }
}

/// Adds a fault, or carries it out when it is an action.
pub(crate) fn add_fault(shared: &Arc<Shared>, spec: FaultSpec) -> u64 {
    if spec.fault.is_action() {
        let id = shared.faults.add(FaultSpec {
            count: Some(0),
            ..spec.clone()
        });
        shared.run_action(&spec);
        return id;
    }
    shared.faults.add(spec)
}

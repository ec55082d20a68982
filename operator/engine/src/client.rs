//! The one hardened [`kube::Client`] of the operator, and the classification of its errors.
//!
//! # What the client does and does not do
//!
//! - **Connect timeout, TCP keepalive, `TCP_NODELAY`** on a hyper-util connector, so a dead
//!   API server is noticed when connecting and a dead peer of an open connection is noticed by
//!   the kernel.
//! - **A deadline on response headers** ([`ClientOptions::response_headers_timeout`]): a tower
//!   timeout around the future that resolves when the headers arrive. A request the server
//!   accepts but never answers fails with a timeout instead of hanging for ever (kube-client has
//!   no read timeout by default). The streaming body of a watch is not limited by it: the watcher
//!   applies its own per-event idle deadline. Per-policy `timeouts.request` is shorter and is
//!   applied by the watcher itself with `tokio::time::timeout`; this one is the global backstop.
//! - **No retry layer.** kube-client's default stack retries 429, 503 and 504 up to 15 times
//!   with its own exponential backoff, invisibly. The engine owns every retry instead: each
//!   target has its own [`crate::backoff::Backoff`], honours `Retry-After`, relists on 410 or
//!   "resourceVersion too large" (a 504 that must not be retried on the same resourceVersion),
//!   and reports each failure in its status. Keeping both layers would multiply them (15 hidden
//!   attempts per visible one, a status that says "Watching" while requests fail, and a 504
//!   "too large" retried blindly); so 429/503/504 reach the caller at once, exactly once.
//! - **Auth, base URI, extra headers** come from kube's own layers (token refresh included),
//!   and TLS from kube's rustls configuration when the cluster URL is `https`.
//! - **Tracing** is a `debug` span per request. kube's default trace layer also logs every
//!   failed attempt at `error` level, which would flood the log during an outage; the watcher
//!   logs once per state change instead.

use crate::guard::WatchGuardLayer;
use std::error::Error as StdError;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{HeaderMap, HeaderValue, RETRY_AFTER, USER_AGENT};
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::client::{Body, ClientBuilder, ConfigExt};
use kube::core::Status;
use tower::{BoxError, Layer, Service, ServiceBuilder};
use tracing::Instrument;
use watchpool_api::ErrorReason;

/// Options of the operator's client. Every field has a production default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// Deadline for a TCP connection (and its TLS handshake) to be established. Default 10 s.
    pub connect_timeout: Duration,
    /// Idle time before TCP keepalive probes start on a connection. Default 30 s.
    pub keepalive: Duration,
    /// Interval between TCP keepalive probes. Default 10 s.
    pub keepalive_interval: Duration,
    /// Unanswered keepalive probes before the kernel drops the connection. Default 3.
    pub keepalive_retries: u32,
    /// Global upper bound on the time from sending a request to its response headers; the
    /// body is not limited. Default 60 s.
    pub response_headers_timeout: Duration,
    /// `User-Agent` of every request (unless the request sets its own).
    pub user_agent: String,
    /// Delay a watch request that follows a failed or empty watch on the same path
    /// ([`crate::guard::WatchGuardLayer`]). For clients used by code that does not back off
    /// after an empty watch itself — kube-runtime's watcher under the operator's Controller.
    /// Off by default: the engine's target watchers own their backoff. Default false.
    pub watch_guard: bool,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            keepalive: Duration::from_secs(30),
            keepalive_interval: Duration::from_secs(10),
            keepalive_retries: 3,
            response_headers_timeout: Duration::from_secs(60),
            user_agent: format!("watchpool/{}", env!("CARGO_PKG_VERSION")),
            watch_guard: false,
        }
    }
}

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No usable configuration was found (kubeconfig, in-cluster environment).
    #[error("cannot infer the cluster configuration")]
    Infer(#[source] kube::config::InferConfigError),
    /// The configuration was found but kube refused it (TLS material, auth settings, headers).
    #[error("invalid client configuration")]
    Config(#[source] kube::Error),
    /// The user agent is not a valid header value.
    #[error("invalid user agent")]
    UserAgent(#[source] http::header::InvalidHeaderValue),
    /// A proxy is configured; this client does not support proxies.
    #[error("proxies are not supported (proxy url {0})")]
    ProxyUnsupported(String),
}

/// Infers the configuration (kubeconfig, then in-cluster) and builds the client from it.
pub async fn infer(options: &ClientOptions) -> Result<kube::Client, ClientError> {
    let config = kube::Config::infer().await.map_err(ClientError::Infer)?;
    build_client(config, options).await
}

/// Builds the hardened client for `config`: see the module documentation for the stack.
/// `http` and `https` cluster URLs both work. The TLS settings, credentials, default namespace
/// and extra headers of `config` are used; its `connect_timeout`, `read_timeout`,
/// `write_timeout` and retry switch are not (`options` and the engine decide those).
pub async fn build_client(
    config: kube::Config,
    options: &ClientOptions,
) -> Result<kube::Client, ClientError> {
    if let Some(proxy) = &config.proxy_url {
        return Err(ClientError::ProxyUnsupported(proxy.to_string()));
    }
    let user_agent = HeaderValue::from_str(&options.user_agent).map_err(ClientError::UserAgent)?;

    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(options.connect_timeout));
    http.set_keepalive(Some(options.keepalive));
    http.set_keepalive_interval(Some(options.keepalive_interval));
    http.set_keepalive_retries(Some(options.keepalive_retries));
    #[cfg(target_os = "linux")]
    http.set_tcp_user_timeout(Some(
        options.keepalive + options.keepalive_interval * options.keepalive_retries,
    ));

    // Plain http connects directly; https (and http) through kube's rustls configuration,
    // which carries the CA, the client identity and `tls_server_name`.
    let connector = config
        .rustls_https_connector_with_connector(http)
        .map_err(ClientError::Config)?;
    let hyper_client: hyper_util::client::legacy::Client<_, Body> =
        hyper_util::client::legacy::Client::builder(TokioExecutor::new()).build(connector);

    let auth = config.auth_layer().map_err(ClientError::Config)?;
    let extra_headers = config.extra_headers_layer().map_err(ClientError::Config)?;
    let guard = if options.watch_guard {
        WatchGuardLayer::default()
    } else {
        WatchGuardLayer::disabled()
    };
    let service = ServiceBuilder::new()
        .layer(guard)
        .layer(TraceLayer)
        .layer(config.base_uri_layer())
        .option_layer(auth)
        .layer(extra_headers)
        .map_request(move |mut request: Request<Body>| {
            request
                .headers_mut()
                .entry(USER_AGENT)
                .or_insert_with(|| user_agent.clone());
            request
        })
        .timeout(options.response_headers_timeout)
        .map_err(BoxError::from)
        .service(hyper_client);

    Ok(ClientBuilder::new(service, config.default_namespace.clone()).build())
}

/// A `debug` span per request, recording the status code; never logs above `debug`.
#[derive(Clone, Copy, Debug)]
struct TraceLayer;

impl<S> Layer<S> for TraceLayer {
    type Service = TraceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceService { inner }
    }
}

#[derive(Clone, Debug)]
struct TraceService<S> {
    inner: S,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> Service<Request<Body>> for TraceService<S>
where
    S: Service<Request<Body>, Response = Response<B>>,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let span = tracing::debug_span!(
            "HTTP",
            http.method = %request.method(),
            http.url = %request.uri(),
            http.status_code = tracing::field::Empty,
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
        );
        let future = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        Box::pin(
            async move {
                let result = future.await;
                let span = tracing::Span::current();
                match &result {
                    Ok(response) => {
                        let status = response.status();
                        span.record("http.status_code", status.as_u16());
                        if status.is_client_error() || status.is_server_error() {
                            span.record("otel.status_code", "ERROR");
                        }
                    }
                    Err(err) => {
                        span.record("otel.status_code", "ERROR");
                        tracing::debug!(error = %err, "request failed");
                    }
                }
                result
            }
            .instrument(span),
        )
    }
}

/// Checks the status of a response obtained with [`kube::Client::send`]: a success is returned
/// as is (its body untouched, ready to stream); a 4xx/5xx body (at most `max_error_body` bytes
/// of it) becomes `kube::Error::Api` like kube's own requests do, except that the
/// `Retry-After` header is kept in the status details (`retry_after_seconds`) so that
/// [`retry_after`] sees it.
pub async fn check_response(
    response: Response<Body>,
    max_error_body: usize,
) -> Result<Response<Body>, kube::Error> {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return Ok(response);
    }
    let hint = retry_after_header(response.headers());
    let body = http_body_util::Limited::new(response.into_body(), max_error_body)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .unwrap_or_default();
    let mut api_status = match serde_json::from_slice::<Status>(&body) {
        Ok(parsed) if parsed.code != 0 || !parsed.reason.is_empty() => parsed,
        _ => {
            let text = String::from_utf8_lossy(&body);
            Status::failure(text.trim(), status.canonical_reason().unwrap_or("Failure"))
        }
    };
    if api_status.code == 0 {
        api_status.code = status.as_u16();
    }
    if let Some(hint) = hint {
        let details = api_status.details.get_or_insert_with(empty_details);
        if details.retry_after_seconds == 0 {
            details.retry_after_seconds = u32::try_from(hint.as_secs()).unwrap_or(u32::MAX);
        }
    }
    Err(kube::Error::Api(api_status.boxed()))
}

fn empty_details() -> kube::core::response::StatusDetails {
    kube::core::response::StatusDetails {
        name: String::new(),
        group: String::new(),
        kind: String::new(),
        uid: String::new(),
        causes: Vec::new(),
        retry_after_seconds: 0,
    }
}

/// The longest wait a `Retry-After` hint is taken for; a larger value is capped to it.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(600);

/// Parses a `Retry-After` header given in seconds (the form the API server uses), capped at
/// [`MAX_RETRY_AFTER`]. HTTP dates are not used by Kubernetes and give `None`.
pub fn retry_after_header(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let seconds: u64 = value.parse().ok()?;
    Some(Duration::from_secs(seconds).min(MAX_RETRY_AFTER))
}

/// The server's `Retry-After` hint carried by an error: the `retryAfterSeconds` of its status
/// details (set by the API server on 429, and by [`check_response`] from the header), capped at
/// [`MAX_RETRY_AFTER`]. `None` when there is no positive hint.
pub fn retry_after(err: &kube::Error) -> Option<Duration> {
    match err {
        kube::Error::Api(status) => status_retry_after(status),
        _ => None,
    }
}

/// The `retryAfterSeconds` of a status (also found in ERROR events of a watch), capped.
pub fn status_retry_after(status: &Status) -> Option<Duration> {
    let seconds = status.details.as_ref()?.retry_after_seconds;
    (seconds > 0).then(|| Duration::from_secs(u64::from(seconds)).min(MAX_RETRY_AFTER))
}

/// Classifies a client error into the fixed set of failure reasons.
///
/// HTTP statuses: 401 `Unauthorized`, 403 `Forbidden`, 404 `NotFound`, 410 `Gone`,
/// 429 `Throttled`, 504 with cause `ResourceVersionTooLarge` `ResourceVersionTooLarge`,
/// 408 `RequestTimeout`, other 5xx `ServerError`. Transport: connection refused or failed
/// to connect (DNS, TLS, connect timeout) `ConnectionFailed`; a connection reset, aborted or
/// closed mid-message `ConnectionReset`; the response-headers deadline `RequestTimeout`.
/// Undecodable responses are `DecodeError`; anything else `Unknown`.
pub fn classify(err: &kube::Error) -> ErrorReason {
    match err {
        kube::Error::Api(status) => classify_status(status),
        kube::Error::HyperError(err) => classify_error(err),
        kube::Error::Service(err) => classify_error(err.as_ref()),
        kube::Error::ReadEvents(err) => classify_error(err),
        kube::Error::SerdeError(_) | kube::Error::FromUtf8(_) => ErrorReason::DecodeError,
        kube::Error::LinesCodecMaxLineLengthExceeded => ErrorReason::EventTooLarge,
        kube::Error::Auth(_) => ErrorReason::Unauthorized,
        kube::Error::TlsRequired => ErrorReason::ConnectionFailed,
        _ => ErrorReason::Unknown,
    }
}

/// Classifies a Kubernetes `Status` (from an error response or an ERROR event of a watch).
pub fn classify_status(status: &Status) -> ErrorReason {
    let too_large = status.details.as_ref().is_some_and(|details| {
        details
            .causes
            .iter()
            .any(|cause| cause.reason == "ResourceVersionTooLarge")
    }) || status.message.contains("Too large resource version");
    if too_large {
        return ErrorReason::ResourceVersionTooLarge;
    }
    match status.code {
        401 => ErrorReason::Unauthorized,
        403 => ErrorReason::Forbidden,
        404 => ErrorReason::NotFound,
        410 => ErrorReason::Gone,
        408 => ErrorReason::RequestTimeout,
        429 => ErrorReason::Throttled,
        500..=599 => ErrorReason::ServerError,
        _ => match status.reason.as_str() {
            "Expired" | "Gone" => ErrorReason::Gone,
            "Unauthorized" => ErrorReason::Unauthorized,
            "Forbidden" => ErrorReason::Forbidden,
            "NotFound" => ErrorReason::NotFound,
            "TooManyRequests" => ErrorReason::Throttled,
            "Timeout" => ErrorReason::RequestTimeout,
            "InternalError" | "ServiceUnavailable" => ErrorReason::ServerError,
            _ => ErrorReason::Unknown,
        },
    }
}

/// Classifies any error by walking its source chain (hyper, hyper-util, tower and tokio
/// timeouts, `std::io` errors, and `kube::Error` anywhere in the chain). The innermost
/// recognised cause wins, except that a failure while connecting is always
/// `ConnectionFailed`.
pub fn classify_error(err: &(dyn StdError + 'static)) -> ErrorReason {
    let mut connecting = false;
    let mut reason = None;
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(err) = current {
        if let Some(kube_err) = err.downcast_ref::<kube::Error>() {
            if let kube::Error::Api(status) = kube_err {
                return classify_status(status);
            }
            let direct = classify_direct(kube_err);
            if direct != ErrorReason::Unknown {
                reason = Some(direct);
            }
        }
        if let Some(legacy) = err.downcast_ref::<hyper_util::client::legacy::Error>()
            && legacy.is_connect()
        {
            connecting = true;
        }
        if err.is::<tower::timeout::error::Elapsed>() || err.is::<tokio::time::error::Elapsed>() {
            reason = Some(ErrorReason::RequestTimeout);
        }
        if let Some(hyper_err) = err.downcast_ref::<hyper::Error>() {
            if hyper_err.is_timeout() {
                reason = Some(ErrorReason::RequestTimeout);
            } else if hyper_err.is_incomplete_message()
                || hyper_err.is_canceled()
                || hyper_err.is_closed()
                || hyper_err.is_body_write_aborted()
            {
                reason = Some(ErrorReason::ConnectionReset);
            } else if hyper_err.is_parse() {
                reason = Some(ErrorReason::DecodeError);
            }
        }
        let mut next = err.source();
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(kind) = classify_io(io.kind()) {
                reason = Some(kind);
            }
            // A wrapping `io::Error` reports its inner error's source, not the inner error.
            if let Some(inner) = io.get_ref() {
                next = Some(inner as &(dyn StdError + 'static));
            }
        }
        current = next;
    }
    if connecting {
        return ErrorReason::ConnectionFailed;
    }
    reason.unwrap_or(ErrorReason::Unknown)
}

/// Variants of `kube::Error` that say what they are without looking at their source.
fn classify_direct(err: &kube::Error) -> ErrorReason {
    match err {
        kube::Error::SerdeError(_) | kube::Error::FromUtf8(_) => ErrorReason::DecodeError,
        kube::Error::LinesCodecMaxLineLengthExceeded => ErrorReason::EventTooLarge,
        kube::Error::Auth(_) => ErrorReason::Unauthorized,
        kube::Error::TlsRequired => ErrorReason::ConnectionFailed,
        _ => ErrorReason::Unknown,
    }
}

fn classify_io(kind: std::io::ErrorKind) -> Option<ErrorReason> {
    use std::io::ErrorKind;
    match kind {
        ErrorKind::ConnectionRefused
        | ErrorKind::AddrNotAvailable
        | ErrorKind::HostUnreachable
        | ErrorKind::NetworkUnreachable
        | ErrorKind::NetworkDown => Some(ErrorReason::ConnectionFailed),
        ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::BrokenPipe
        | ErrorKind::UnexpectedEof
        | ErrorKind::NotConnected => Some(ErrorReason::ConnectionReset),
        ErrorKind::TimedOut => Some(ErrorReason::RequestTimeout),
        _ => None,
    }
}

/// True when the error is a deadline: the response-headers timeout of this client, a tokio
/// timeout the caller wrapped around a request, or a transport timeout.
pub fn is_timeout(err: &kube::Error) -> bool {
    classify(err) == ErrorReason::RequestTimeout
}

/// True when the connection could not be established (refused, DNS, TLS, connect timeout).
pub fn is_connect_failure(err: &kube::Error) -> bool {
    classify(err) == ErrorReason::ConnectionFailed
}

/// True when an established connection broke (reset, aborted, closed mid-message).
pub fn is_reset(err: &kube::Error) -> bool {
    classify(err) == ErrorReason::ConnectionReset
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::response::{StatusCause, StatusDetails};

    fn status(code: u16, reason: &str, message: &str) -> Status {
        let mut s = Status::failure(message, reason);
        s.code = code;
        s
    }

    #[test]
    fn http_statuses_map_to_reasons() {
        let cases = [
            (401, "Unauthorized", ErrorReason::Unauthorized),
            (403, "Forbidden", ErrorReason::Forbidden),
            (404, "NotFound", ErrorReason::NotFound),
            (410, "Expired", ErrorReason::Gone),
            (410, "Gone", ErrorReason::Gone),
            (429, "TooManyRequests", ErrorReason::Throttled),
            (500, "InternalError", ErrorReason::ServerError),
            (503, "ServiceUnavailable", ErrorReason::ServerError),
            (504, "Timeout", ErrorReason::ServerError),
            (408, "Timeout", ErrorReason::RequestTimeout),
            (0, "Expired", ErrorReason::Gone),
            (418, "Teapot", ErrorReason::Unknown),
        ];
        for (code, reason, expected) in cases {
            let err = kube::Error::Api(status(code, reason, "x").boxed());
            assert_eq!(classify(&err), expected, "{code} {reason}");
        }
    }

    #[test]
    fn resource_version_too_large_is_recognised_by_cause_or_message() {
        let mut by_cause = status(504, "Timeout", "Timeout: request did not complete");
        by_cause.details = Some(StatusDetails {
            causes: vec![StatusCause {
                reason: "ResourceVersionTooLarge".into(),
                message: "Too large resource version".into(),
                field: String::new(),
            }],
            ..empty_details()
        });
        assert_eq!(
            classify_status(&by_cause),
            ErrorReason::ResourceVersionTooLarge
        );
        let by_message = status(504, "Timeout", "Too large resource version: 12, current: 3");
        assert_eq!(
            classify_status(&by_message),
            ErrorReason::ResourceVersionTooLarge
        );
    }

    #[test]
    fn io_errors_in_the_chain_are_classified() {
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(classify_error(&refused), ErrorReason::ConnectionFailed);
        let reset: BoxError = Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset));
        let err = kube::Error::Service(reset);
        assert_eq!(classify(&err), ErrorReason::ConnectionReset);
        assert!(is_reset(&err));
        let wrapped = std::io::Error::other(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert_eq!(classify_error(&wrapped), ErrorReason::ConnectionReset);
    }

    #[test]
    fn timeouts_are_classified() {
        let elapsed: BoxError = Box::new(tower::timeout::error::Elapsed::new());
        let err = kube::Error::Service(elapsed);
        assert!(is_timeout(&err));
        assert!(!is_reset(&err));
    }

    #[test]
    fn kube_error_nested_in_a_box_is_found() {
        let inner = kube::Error::Api(status(403, "Forbidden", "no").boxed());
        let boxed: BoxError = Box::new(inner);
        assert_eq!(classify_error(boxed.as_ref()), ErrorReason::Forbidden);
    }

    #[test]
    fn decode_failures_are_decode_errors() {
        let serde = serde_json::from_str::<u32>("nope").unwrap_err();
        assert_eq!(
            classify(&kube::Error::SerdeError(serde)),
            ErrorReason::DecodeError
        );
    }

    #[test]
    fn retry_after_comes_from_status_details_and_is_capped() {
        let mut s = status(429, "TooManyRequests", "slow down");
        assert_eq!(retry_after(&kube::Error::Api(s.clone().boxed())), None);
        s.details = Some(StatusDetails {
            retry_after_seconds: 7,
            ..empty_details()
        });
        assert_eq!(
            retry_after(&kube::Error::Api(s.clone().boxed())),
            Some(Duration::from_secs(7))
        );
        s.details = Some(StatusDetails {
            retry_after_seconds: 1_000_000,
            ..empty_details()
        });
        assert_eq!(
            retry_after(&kube::Error::Api(s.boxed())),
            Some(MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn retry_after_header_in_seconds_is_parsed() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after_header(&headers), None);
        headers.insert(RETRY_AFTER, HeaderValue::from_static(" 3 "));
        assert_eq!(retry_after_header(&headers), Some(Duration::from_secs(3)));
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after_header(&headers), None);
    }

    #[tokio::test]
    async fn check_response_keeps_the_retry_after_header() {
        let response = Response::builder()
            .status(429)
            .header(RETRY_AFTER, "4")
            .body(Body::from(b"not json".to_vec()))
            .unwrap();
        let err = check_response(response, 1024).await.unwrap_err();
        assert_eq!(classify(&err), ErrorReason::Throttled);
        assert_eq!(retry_after(&err), Some(Duration::from_secs(4)));
    }

    #[tokio::test]
    async fn check_response_parses_a_status_body_and_passes_successes() {
        let body = serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure",
            "message": "too old resource version: 1 (5)", "reason": "Expired", "code": 410
        });
        let response = Response::builder()
            .status(410)
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap();
        let err = check_response(response, 1024).await.unwrap_err();
        assert_eq!(classify(&err), ErrorReason::Gone);
        let ok = Response::builder()
            .status(200)
            .body(Body::from(b"{}".to_vec()))
            .unwrap();
        assert!(check_response(ok, 1024).await.is_ok());
    }
}

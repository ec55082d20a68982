//! Raw requests of the engine through `kube::Client::send`, each under a deadline, and the
//! classification of their failures into the engine's fixed set of reasons.

use std::borrow::Cow;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;
use watchpool_api::ErrorReason;

/// Largest error body read from a failed response.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The `Status` the API server answered a failed request (or an ERROR watch event) with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiStatus {
    /// HTTP code (`code` of the Status).
    pub code: u16,
    /// The Status `reason` (`Expired`, `Forbidden`…), empty if none.
    pub reason: String,
    /// The Status message (never object contents).
    pub message: String,
    /// Reasons of `details.causes`.
    pub causes: Vec<String>,
    /// `Retry-After` of the response, if any.
    pub retry_after: Option<Duration>,
}

impl ApiStatus {
    /// True when the server says the requested resourceVersion is ahead of it.
    pub fn is_resource_version_too_large(&self) -> bool {
        self.causes.iter().any(|c| c == "ResourceVersionTooLarge")
            || self.reason == "ResourceVersionTooLarge"
            || self.message.contains("Too large resource version")
    }

    /// The engine's reason for this status.
    pub fn error_reason(&self) -> ErrorReason {
        if self.is_resource_version_too_large() {
            return ErrorReason::ResourceVersionTooLarge;
        }
        match self.code {
            401 => ErrorReason::Unauthorized,
            403 => ErrorReason::Forbidden,
            404 => ErrorReason::NotFound,
            410 => ErrorReason::Gone,
            429 => ErrorReason::Throttled,
            500..=599 => ErrorReason::ServerError,
            _ => ErrorReason::Unknown,
        }
    }

    /// Parses a Status body; anything unparsable keeps the HTTP code and a generic message.
    pub fn parse(code: u16, body: &[u8], retry_after: Option<Duration>) -> Self {
        #[derive(Deserialize)]
        struct Cause<'a> {
            #[serde(borrow, default)]
            reason: Option<Cow<'a, str>>,
        }
        #[derive(Deserialize)]
        struct Details<'a> {
            #[serde(borrow, default)]
            causes: Option<Vec<Cause<'a>>>,
        }
        #[derive(Deserialize)]
        struct Status<'a> {
            #[serde(default)]
            code: Option<u16>,
            #[serde(borrow, default)]
            reason: Option<Cow<'a, str>>,
            #[serde(borrow, default)]
            message: Option<Cow<'a, str>>,
            #[serde(borrow, default)]
            details: Option<Details<'a>>,
        }
        match serde_json::from_slice::<Status<'_>>(body) {
            Ok(status) => Self {
                code: status.code.filter(|c| *c != 0).unwrap_or(code),
                reason: status.reason.map(Cow::into_owned).unwrap_or_default(),
                message: status
                    .message
                    .map(|m| truncate(&m, 512))
                    .unwrap_or_default(),
                causes: status
                    .details
                    .and_then(|d| d.causes)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|c| c.reason.map(Cow::into_owned))
                    .collect(),
                retry_after,
            },
            Err(_) => Self {
                code,
                reason: String::new(),
                message: format!("http status {code}"),
                causes: Vec::new(),
                retry_after,
            },
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// A failed request or stream.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    /// The request could not be built.
    #[error("cannot build request: {0}")]
    Build(String),
    /// The request could not be sent (connection refused, DNS, TLS, reset before headers).
    #[error("cannot reach the api server: {0}")]
    Connect(String),
    /// No response (headers, or a whole list page) within the deadline.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// The server answered with an error status.
    #[error("api server answered {}: {}", .0.code, .0.message)]
    Status(ApiStatus),
    /// The response body broke off.
    #[error("response body broke off: {0}")]
    Body(String),
    /// A response could not be decoded.
    #[error("cannot decode response: {0}")]
    Decode(String),
    /// The kind is not served.
    #[error("kind not served: {0}")]
    KindNotFound(String),
}

impl RequestError {
    /// The engine's reason for this failure.
    pub fn error_reason(&self) -> ErrorReason {
        match self {
            RequestError::Build(_) => ErrorReason::Unknown,
            RequestError::Connect(_) => ErrorReason::ConnectionFailed,
            RequestError::Timeout(_) => ErrorReason::RequestTimeout,
            RequestError::Status(status) => status.error_reason(),
            RequestError::Body(_) => ErrorReason::ConnectionReset,
            RequestError::Decode(_) => ErrorReason::DecodeError,
            RequestError::KindNotFound(_) => ErrorReason::NotFound,
        }
    }
}

fn parse_retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// Sends `request` and waits at most `timeout` for its response headers. A non-success status
/// is turned into [`RequestError::Status`] (its body read, bounded, under the same deadline).
pub async fn send_headers(
    client: &kube::Client,
    mut request: http::Request<Vec<u8>>,
    timeout: Duration,
) -> Result<http::Response<kube::client::Body>, RequestError> {
    // Watch bodies are read line by line: ask for them uncompressed.
    request
        .headers_mut()
        .entry(http::header::ACCEPT_ENCODING)
        .or_insert(http::HeaderValue::from_static("identity"));
    let deadline = tokio::time::Instant::now() + timeout;
    let response =
        match tokio::time::timeout_at(deadline, client.send(request.map(Into::into))).await {
            Err(_) => return Err(RequestError::Timeout(timeout)),
            Ok(Err(e)) => return Err(RequestError::Connect(error_chain(&e))),
            Ok(Ok(response)) => response,
        };
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let retry_after = parse_retry_after(response.headers());
    let body = Limited::new(response.into_body(), MAX_ERROR_BODY);
    let bytes = match tokio::time::timeout_at(deadline, body.collect()).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        _ => Bytes::new(),
    };
    Err(RequestError::Status(ApiStatus::parse(
        status.as_u16(),
        &bytes,
        retry_after,
    )))
}

/// Sends `request` and reads its whole body (at most `max_body` bytes), all within `timeout`.
pub async fn send_bounded(
    client: &kube::Client,
    request: http::Request<Vec<u8>>,
    timeout: Duration,
    max_body: usize,
) -> Result<Bytes, RequestError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let response = send_headers(client, request, timeout).await?;
    let body = Limited::new(response.into_body(), max_body);
    match tokio::time::timeout_at(deadline, body.collect()).await {
        Err(_) => Err(RequestError::Timeout(timeout)),
        Ok(Err(e)) => Err(RequestError::Body(e.to_string())),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
    }
}

/// The messages of an error and its sources, joined (never object contents).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = e.source();
    }
    truncate(&out, 512)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_body_gives_reason_and_causes() {
        let body = br#"{"kind":"Status","code":504,"reason":"Timeout","message":"Too large resource version","details":{"causes":[{"reason":"ResourceVersionTooLarge","message":"x"}]}}"#;
        let status = ApiStatus::parse(504, body, None);
        assert!(status.is_resource_version_too_large());
        assert_eq!(status.error_reason(), ErrorReason::ResourceVersionTooLarge);
        let gone = ApiStatus::parse(410, b"not json", None);
        assert_eq!(gone.error_reason(), ErrorReason::Gone);
        let plain_504 = ApiStatus::parse(504, br#"{"code":504,"message":"timeout"}"#, None);
        assert_eq!(plain_504.error_reason(), ErrorReason::ServerError);
    }

    #[test]
    fn retry_after_is_read_in_seconds() {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("3"),
        );
        assert_eq!(parse_retry_after(&headers), Some(Duration::from_secs(3)));
    }
}

//! A spin guard for watch requests issued by code the engine does not drive itself.
//!
//! The engine's own target watchers back off after every failure and every empty watch. The
//! operator's WatchPolicy watch, however, is kube-runtime's `watcher()` under a `Controller`,
//! and kube-runtime 5.0 re-watches at once when a watch response ends with no event: against a
//! server that answers `200` and closes straight away, it issues thousands of requests a second
//! (FAULTS.md row 2, and row 23 for the operator itself). Its backoff only sees errors.
//!
//! [`WatchGuardLayer`] closes that gap at the HTTP layer, where every watch request passes:
//! per request path it remembers whether the last watch failed (an error status, a transport
//! error, or a stream that ended within a second without delivering a byte) and delays the next
//! watch request on that path by a per-path [`Backoff`]. A watch that delivered data, or lived a
//! healthy while, resets it. Requests other than watches pass untouched. Written by hand because
//! no maintained crate offers a watch-aware guard for kube's client stack.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use tower::{Layer, Service};
use watchpool_api::BackoffConfig;

use crate::backoff::Backoff;
// A watch that ends sooner than this without a byte is an empty watch: a failure, as for the
// engine's own watchers.
use crate::watcher::HEALTHY_WATCH;

/// Delays the watch requests that follow a failed or empty watch on the same path.
#[derive(Clone, Debug)]
pub struct WatchGuardLayer {
    state: Option<Arc<GuardState>>,
}

#[derive(Debug)]
struct GuardState {
    config: BackoffConfig,
    paths: Mutex<HashMap<String, PathState>>,
}

#[derive(Debug)]
struct PathState {
    backoff: Backoff,
    not_before: Option<Instant>,
}

impl WatchGuardLayer {
    /// A guard whose delays follow `config` (its `initial`, `max`, `factor` and `jitter`).
    pub fn new(config: BackoffConfig) -> Self {
        Self {
            state: Some(Arc::new(GuardState {
                config,
                paths: Mutex::new(HashMap::new()),
            })),
        }
    }

    /// A layer that passes every request through (for clients whose callers back off
    /// themselves, like the engine's target watchers: two guards would multiply the delays).
    pub fn disabled() -> Self {
        Self { state: None }
    }
}

impl Default for WatchGuardLayer {
    fn default() -> Self {
        Self::new(BackoffConfig {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(30),
            ..BackoffConfig::default()
        })
    }
}

impl GuardState {
    fn delay_for(&self, path: &str) -> Duration {
        let Ok(paths) = self.paths.lock() else {
            return Duration::ZERO;
        };
        paths
            .get(path)
            .and_then(|p| p.not_before)
            .map_or(Duration::ZERO, |at| {
                at.saturating_duration_since(Instant::now())
            })
    }

    fn record(&self, path: &str, healthy: bool) {
        let Ok(mut paths) = self.paths.lock() else {
            return;
        };
        if healthy {
            paths.remove(path);
            return;
        }
        let entry = paths.entry(path.to_owned()).or_insert_with(|| PathState {
            backoff: Backoff::new(&self.config),
            not_before: None,
        });
        let delay = entry.backoff.next_delay();
        entry.not_before = Some(Instant::now() + delay);
    }
}

impl<S> Layer<S> for WatchGuardLayer {
    type Service = WatchGuard<S>;

    fn layer(&self, inner: S) -> Self::Service {
        WatchGuard {
            inner,
            state: self.state.clone(),
        }
    }
}

/// The service of [`WatchGuardLayer`].
#[derive(Clone, Debug)]
pub struct WatchGuard<S> {
    inner: S,
    state: Option<Arc<GuardState>>,
}

fn is_watch<B>(request: &Request<B>) -> bool {
    request.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|pair| pair == "watch=true" || pair == "watch=1")
    })
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for WatchGuard<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
    ResBody: Body<Data = Bytes> + Unpin,
{
    type Response = Response<GuardBody<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        // The service that was polled ready serves this call; a fresh clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let state = match &self.state {
            Some(state) if is_watch(&request) => Arc::clone(state),
            _ => {
                let future = inner.call(request);
                return Box::pin(async move {
                    let response = future.await?;
                    Ok(response.map(GuardBody::passthrough))
                });
            }
        };
        let path = request.uri().path().to_owned();
        Box::pin(async move {
            let delay = state.delay_for(&path);
            if !delay.is_zero() {
                tracing::debug!(%path, ?delay, "delaying a watch after a failed or empty one");
                tokio::time::sleep(delay).await;
            }
            match inner.call(request).await {
                Ok(response) => {
                    if response.status().is_client_error() || response.status().is_server_error() {
                        state.record(&path, false);
                        return Ok(response.map(GuardBody::passthrough));
                    }
                    Ok(response.map(|body| GuardBody {
                        inner: body,
                        watch: Some(WatchTrack {
                            state,
                            path,
                            started: Instant::now(),
                            saw_data: false,
                        }),
                    }))
                }
                Err(e) => {
                    state.record(&path, false);
                    Err(e)
                }
            }
        })
    }
}

#[derive(Debug)]
struct WatchTrack {
    state: Arc<GuardState>,
    path: String,
    started: Instant,
    saw_data: bool,
}

impl WatchTrack {
    fn finish(self, broken: bool) {
        let healthy = self.saw_data || (!broken && self.started.elapsed() >= HEALTHY_WATCH);
        self.state.record(&self.path, healthy);
    }
}

/// A response body that reports, when a watch stream ends, whether it was healthy.
#[derive(Debug)]
pub struct GuardBody<B> {
    inner: B,
    watch: Option<WatchTrack>,
}

impl<B> GuardBody<B> {
    fn passthrough(inner: B) -> Self {
        Self { inner, watch: None }
    }
}

impl<B> Body for GuardBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(track), Some(data)) = (this.watch.as_mut(), frame.data_ref())
                    && !data.is_empty()
                {
                    track.saw_data = true;
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(track) = this.watch.take() {
                    track.finish(true);
                }
            }
            Poll::Ready(None) => {
                if let Some(track) = this.watch.take() {
                    track.finish(false);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl<B> Drop for GuardBody<B> {
    fn drop(&mut self) {
        // A watch dropped by its reader (e.g. kube's own idle timeout) ends here.
        if let Some(track) = self.watch.take() {
            track.finish(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> Arc<GuardState> {
        Arc::new(GuardState {
            config: BackoffConfig {
                initial: Duration::from_millis(100),
                max: Duration::from_secs(2),
                jitter: 0.0,
                ..BackoffConfig::default()
            },
            paths: Mutex::new(HashMap::new()),
        })
    }

    #[test]
    fn watch_requests_are_recognised_by_their_query() {
        let watch = Request::get("/api/v1/configmaps?&watch=true&resourceVersion=5")
            .body(())
            .unwrap();
        let list = Request::get("/api/v1/configmaps?limit=500")
            .body(())
            .unwrap();
        assert!(is_watch(&watch));
        assert!(!is_watch(&list));
    }

    #[test]
    fn failures_grow_the_delay_per_path_and_health_clears_it() {
        let s = state();
        assert_eq!(s.delay_for("/a"), Duration::ZERO);
        s.record("/a", false);
        let first = s.delay_for("/a");
        assert!(first > Duration::from_millis(50) && first <= Duration::from_millis(100));
        s.record("/a", false);
        let second = s.delay_for("/a");
        assert!(second > Duration::from_millis(150), "{second:?}");
        assert_eq!(s.delay_for("/b"), Duration::ZERO, "paths are independent");
        s.record("/a", true);
        assert_eq!(s.delay_for("/a"), Duration::ZERO);
    }
}

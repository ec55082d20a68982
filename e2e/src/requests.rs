//! Reading the emulator's request log the way FAULTS.md judges a run: which requests the
//! operator's watches made, how they were spaced, and whether any came without a backoff
//! delay after a failure.

use std::time::Duration;

use kube_emulator::RequestRecord;

/// The User-Agent of the harness's own client (writer, fresh lists): never counted as the
/// operator's.
pub const HARNESS_USER_AGENT: &str = "watchpool-e2e";

/// A request of the operator on one watched collection, with its times in milliseconds since
/// the Unix epoch.
#[derive(Clone, Debug)]
pub struct WatchRequest {
    /// The record as logged.
    pub record: RequestRecord,
    /// Arrival time.
    pub start_ms: i64,
    /// Arrival + `duration_ms` (for a watch: when its stream ended).
    pub end_ms: i64,
}

impl WatchRequest {
    /// True for a list request.
    pub fn is_list(&self) -> bool {
        self.record.verb == "list"
    }

    /// True for a watch request.
    pub fn is_watch(&self) -> bool {
        self.record.verb == "watch"
    }

    /// True when the request failed: an error status, no headers at all, or a watch that
    /// ended other than by its timeout or by the client.
    pub fn failed(&self) -> bool {
        let r = &self.record;
        r.status == 0
            || r.status >= 400
            || !r.faults.is_empty()
            || matches!(
                r.watch_end.as_deref(),
                Some(
                    "dropped"
                        | "reset"
                        | "error"
                        | "expired"
                        | "empty"
                        | "slow_consumer"
                        | "shutdown"
                )
            )
    }

    /// The `resourceVersion` query parameter.
    pub fn resource_version(&self) -> Option<&str> {
        self.record
            .query
            .split('&')
            .find_map(|kv| kv.strip_prefix("resourceVersion="))
    }
}

fn millis(time: &str) -> Option<i64> {
    time.parse::<jiff::Timestamp>()
        .ok()
        .map(|t| t.as_millisecond())
}

/// The operator's list and watch requests on `resource` in `namespace` (`""`: cluster-wide), in
/// arrival order. Requests of the harness (its User-Agent) and of kubectl are left out.
pub fn operator_requests(
    records: &[RequestRecord],
    resource: &str,
    namespace: &str,
) -> Vec<WatchRequest> {
    let mut out: Vec<WatchRequest> = records
        .iter()
        .filter(|r| {
            (r.verb == "list" || r.verb == "watch")
                && r.resource == resource
                && r.namespace == namespace
                && !r.user_agent.starts_with(HARNESS_USER_AGENT)
                && !r.user_agent.starts_with("kubectl")
        })
        .filter_map(|r| {
            let start_ms = millis(&r.time)?;
            let end_ms = start_ms + i64::try_from(r.duration_ms).unwrap_or(i64::MAX / 2);
            Some(WatchRequest {
                record: r.clone(),
                start_ms,
                end_ms,
            })
        })
        .collect();
    out.sort_by_key(|r| r.record.seq);
    out
}

/// The operator's watches on `resource` in `namespace` that are still open.
pub fn open_watches(records: &[RequestRecord], resource: &str, namespace: &str) -> usize {
    operator_requests(records, resource, namespace)
        .iter()
        .filter(|r| r.is_watch() && r.record.watch_end.is_none() && r.record.status == 200)
        .count()
}

/// How far a logged end time (arrival, rounded to the millisecond, plus a duration rounded
/// down) may fall before the true one.
const END_ROUNDING_MS: i64 = 10;

/// Those that arrived at or after `since_ms` (epoch milliseconds), and the watches that were
/// still open then (the streams a fault injected at `since_ms` hits, even when the fault ends
/// them within the same millisecond).
pub fn since(requests: &[WatchRequest], since_ms: i64) -> Vec<WatchRequest> {
    requests
        .iter()
        .filter(|r| {
            r.start_ms >= since_ms
                || (r.is_watch()
                    && r.record.status == 200
                    && (r.record.watch_end.is_none() || r.end_ms + END_ROUNDING_MS >= since_ms))
        })
        .cloned()
        .collect()
}

/// Now in epoch milliseconds (the emulator stamps records with the same clock).
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

/// The smallest delay between the end of a failed request and the start of the next one, or
/// `None` when no request failed. A spin shows up as a delay near zero.
pub fn min_delay_after_failure(requests: &[WatchRequest]) -> Option<Duration> {
    requests
        .windows(2)
        .filter(|w| w[0].failed())
        .map(|w| {
            let gap = w[1].start_ms - w[0].end_ms;
            Duration::from_millis(u64::try_from(gap).unwrap_or(0))
        })
        .min()
}

/// Requests per second over the span of `requests` (first start to last start), or 0.
pub fn rate_per_sec(requests: &[WatchRequest]) -> f64 {
    match (requests.first(), requests.last()) {
        (Some(first), Some(last)) if last.start_ms > first.start_ms => {
            (requests.len() as f64 - 1.0) * 1000.0 / (last.start_ms - first.start_ms) as f64
        }
        _ => 0.0,
    }
}

/// The most requests that arrived within any `window` (e.g. 1 ms for a synchronised burst).
pub fn max_in_window(requests: &[WatchRequest], window: Duration) -> usize {
    let window = i64::try_from(window.as_millis()).unwrap_or(i64::MAX);
    let mut starts: Vec<i64> = requests.iter().map(|r| r.start_ms).collect();
    starts.sort_unstable();
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..starts.len() {
        while starts[hi] - starts[lo] >= window {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(
        seq: u64,
        ms: i64,
        verb: &str,
        status: u16,
        dur: u64,
        end: Option<&str>,
    ) -> RequestRecord {
        let time = jiff::Timestamp::from_millisecond(ms).unwrap().to_string();
        RequestRecord {
            seq,
            time,
            method: "GET".into(),
            verb: verb.into(),
            resource: "configmaps".into(),
            namespace: "ns".into(),
            status,
            duration_ms: dur,
            watch: verb == "watch",
            watch_end: end.map(Into::into),
            query: "resourceVersion=7&watch=true".into(),
            ..RequestRecord::default()
        }
    }

    #[test]
    fn min_delay_after_failure_measures_from_the_end_of_the_failed_stream() {
        let records = vec![
            rec(1, 1_000, "list", 200, 5, None),
            rec(2, 1_010, "watch", 200, 100, Some("dropped")),
            rec(3, 1_310, "watch", 200, 50, Some("empty")),
            rec(4, 1_370, "watch", 200, 0, None),
        ];
        let reqs = operator_requests(&records, "configmaps", "ns");
        assert_eq!(reqs.len(), 4);
        // 1310 - (1010 + 100) = 200; 1370 - (1310 + 50) = 10.
        assert_eq!(
            min_delay_after_failure(&reqs),
            Some(Duration::from_millis(10))
        );
        assert_eq!(reqs[1].resource_version(), Some("7"));
    }

    #[test]
    fn harness_and_kubectl_requests_are_not_the_operators() {
        let mut mine = rec(1, 1_000, "list", 200, 5, None);
        mine.user_agent = HARNESS_USER_AGENT.into();
        let mut kubectl = rec(2, 1_000, "list", 200, 5, None);
        kubectl.user_agent = "kubectl/v1.35.0 (linux/amd64)".into();
        let theirs = rec(3, 1_000, "list", 200, 5, None);
        assert_eq!(
            operator_requests(&[mine, kubectl, theirs], "configmaps", "ns").len(),
            1
        );
    }

    #[test]
    fn since_keeps_streams_open_at_that_time_but_not_earlier_refusals() {
        let records = vec![
            rec(1, 1_000, "watch", 200, 0, None),
            rec(2, 1_100, "watch", 503, 0, None),
            rec(3, 1_200, "watch", 200, 300, Some("dropped")),
            rec(4, 1_300, "watch", 200, 50, Some("timeout")),
            rec(5, 2_000, "list", 200, 5, None),
        ];
        let reqs = operator_requests(&records, "configmaps", "ns");
        let seqs: Vec<u64> = since(&reqs, 1_450).iter().map(|r| r.record.seq).collect();
        // 1: still open; 3: ended at 1500, after; 2: refused before; 4: ended at 1350, before.
        assert_eq!(seqs, vec![1, 3, 5]);
    }

    #[test]
    fn max_in_window_finds_a_burst() {
        let records: Vec<_> = [0, 0, 1, 500, 900]
            .iter()
            .enumerate()
            .map(|(i, ms)| rec(i as u64 + 1, 10_000 + ms, "watch", 200, 0, None))
            .collect();
        let reqs = operator_requests(&records, "configmaps", "ns");
        assert_eq!(max_in_window(&reqs, Duration::from_millis(1)), 2);
        assert_eq!(max_in_window(&reqs, Duration::from_millis(2)), 3);
        assert!((rate_per_sec(&reqs) - 4.0 / 0.9).abs() < 0.01);
    }
}

//! Reading the operator's `/metrics` text (Prometheus / OpenMetrics exposition format).

/// The sum of every sample of metric `name` whose labels include all of `labels`
/// (`("policy", "e2e")`…). Counters are matched with or without their `_total` suffix.
pub fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, label_text) = match series.split_once('{') {
                Some((m, rest)) => (m, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let all = labels
                .iter()
                .all(|(k, v)| label_text.split(',').any(|kv| kv == format!("{k}=\"{v}\"")));
            if all { value.parse::<f64>().ok() } else { None }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sum_adds_the_matching_series_only() {
        let text = "# TYPE watchpool_watch_events counter\n\
            watchpool_watch_events_total{policy_namespace=\"a\",policy=\"p\",kind=\"ConfigMap\",type=\"ADDED\"} 3\n\
            watchpool_watch_events_total{policy_namespace=\"a\",policy=\"p\",kind=\"ConfigMap\",type=\"DELETED\"} 2\n\
            watchpool_watch_events_total{policy_namespace=\"a\",policy=\"q\",kind=\"ConfigMap\",type=\"ADDED\"} 7\n\
            watchpool_leader 1\n# EOF\n";
        assert_eq!(
            sum(text, "watchpool_watch_events_total", &[("policy", "p")]),
            5.0
        );
        assert_eq!(
            sum(text, "watchpool_watch_events_total", &[("type", "ADDED")]),
            10.0
        );
        assert_eq!(sum(text, "watchpool_leader", &[]), 1.0);
        assert_eq!(sum(text, "watchpool_missing", &[]), 0.0);
    }
}

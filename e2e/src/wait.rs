//! Waiting for a condition with a deadline: every wait of the suite goes through here, so no
//! test ever sleeps in place of a condition.

use std::future::Future;
use std::time::{Duration, Instant};

/// A condition was not met in time.
#[derive(Debug, thiserror::Error)]
#[error("timed out after {waited:?} waiting for {what}; last seen: {last}")]
pub struct WaitTimeout {
    /// What was waited for.
    pub what: String,
    /// How long.
    pub waited: Duration,
    /// The last observation, for the failure message.
    pub last: String,
}

/// What one poll of a condition found.
#[derive(Debug)]
pub enum Poll<T> {
    /// The condition holds, with its value.
    Ready(T),
    /// Not yet; the text says what was seen instead.
    Pending(String),
}

/// Polls `check` every `interval` until it returns [`Poll::Ready`] or `deadline` passes.
/// Returns the value and the time it took.
pub async fn until<T, F, Fut>(
    what: &str,
    deadline: Duration,
    interval: Duration,
    mut check: F,
) -> Result<(T, Duration), WaitTimeout>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Poll<T>>,
{
    let start = Instant::now();
    let mut last = String::from("(nothing yet)");
    loop {
        let remaining = deadline.saturating_sub(start.elapsed());
        match tokio::time::timeout(remaining.max(Duration::from_millis(1)), check()).await {
            Ok(Poll::Ready(value)) => return Ok((value, start.elapsed())),
            Ok(Poll::Pending(seen)) => last = seen,
            Err(_) => {}
        }
        if start.elapsed() >= deadline {
            return Err(WaitTimeout {
                what: what.to_owned(),
                waited: start.elapsed(),
                last,
            });
        }
        tokio::time::sleep(interval.min(deadline.saturating_sub(start.elapsed()))).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn until_returns_once_the_condition_holds() {
        let mut n = 0;
        let (value, took) = until(
            "n reaches 3",
            Duration::from_secs(2),
            Duration::from_millis(5),
            || {
                n += 1;
                let seen = n;
                async move {
                    if seen >= 3 {
                        Poll::Ready(seen)
                    } else {
                        Poll::Pending(format!("n={seen}"))
                    }
                }
            },
        )
        .await
        .unwrap();
        assert_eq!(value, 3);
        assert!(took < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn until_times_out_with_the_last_observation() {
        let err = until(
            "never",
            Duration::from_millis(50),
            Duration::from_millis(5),
            || async { Poll::<()>::Pending("still no".into()) },
        )
        .await
        .unwrap_err();
        assert_eq!(err.last, "still no");
        assert!(err.waited >= Duration::from_millis(50));
    }
}

//! Per-target exponential backoff with jitter, a floor and a reset rule.
//!
//! Each target watcher owns its own [`Backoff`]: a failure of one target never delays another.
//! The delay after the `n`-th consecutive failure is `d = initial * factor^(n-1)` jittered
//! downwards — with jitter `j` it is drawn uniformly from `[d*(1-j), d]`, so many watches that
//! failed together spread out — and then capped at `max`. Because the cap comes after the
//! jitter, a target whose exponential has grown past `max/(1-j)` waits exactly `max`: during a
//! long outage it asks once per `max`, not more often. No delay is ever shorter than
//! [`MIN_DELAY`]: a retry loop cannot spin, whatever the configuration.
//!
//! Unlike kube-runtime's `default_backoff`, which starts again from its initial delay as soon as
//! anything succeeds (so during a long outage a successful relist attempt keeps it near one
//! second), this backoff only starts again after the target has been healthy for `reset_after`
//! ([`Backoff::record_healthy`]) or when asked explicitly ([`Backoff::reset`]).

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use watchpool_api::BackoffConfig;

/// The shortest delay [`Backoff`] ever returns, whatever its configuration.
pub const MIN_DELAY: Duration = Duration::from_millis(10);

/// The backoff state of one target: its consecutive failures and its own random source.
#[derive(Clone, Debug)]
pub struct Backoff {
    config: BackoffConfig,
    failures: u32,
    rng: SmallRng,
}

impl Backoff {
    /// A backoff with no failures yet, seeded from the thread's random source.
    pub fn new(config: &BackoffConfig) -> Self {
        Self::with_rng(config, SmallRng::from_rng(&mut rand::rng()))
    }

    /// A backoff whose jitter is drawn from a fixed seed (deterministic, for tests).
    pub fn with_seed(config: &BackoffConfig, seed: u64) -> Self {
        Self::with_rng(config, SmallRng::seed_from_u64(seed))
    }

    /// A backoff drawing its jitter from `rng`.
    pub fn with_rng(config: &BackoffConfig, rng: SmallRng) -> Self {
        Self {
            config: *config,
            failures: 0,
            rng,
        }
    }

    /// The configuration in force.
    pub fn config(&self) -> &BackoffConfig {
        &self.config
    }

    /// Replaces the configuration and starts again from zero failures (a policy change).
    pub fn set_config(&mut self, config: &BackoffConfig) {
        self.config = *config;
        self.failures = 0;
    }

    /// Consecutive failures recorded since the last reset.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// True when `max_retries > 0` and that many consecutive failures were recorded.
    pub fn exhausted(&self) -> bool {
        self.config.max_retries > 0 && self.failures >= self.config.max_retries
    }

    /// Records one more consecutive failure and returns how long to wait before the next
    /// attempt: the jittered delay of [`Backoff::nominal_delay`], never below [`MIN_DELAY`].
    pub fn next_delay(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let jitter = clamp_unit(self.config.jitter);
        // `random::<f64>()` is in [0, 1): the factor is in (1-j, 1].
        let draw = if jitter > 0.0 {
            1.0 - jitter * self.rng.random::<f64>()
        } else {
            1.0
        };
        // Jitter applies to the uncapped exponential, then the cap: while it is below `max`
        // the delay is in (d(1-j), d]; once it has grown past max/(1-j) every delay is `max`,
        // so a target that has converged asks exactly once per `max` (FAULTS.md row 12), and
        // the phases its earlier, jittered delays gave it keep targets apart.
        let seconds = self.raw_delay_secs(self.failures) * draw;
        capped(seconds, self.config.max).max(MIN_DELAY)
    }

    /// Records a failure answered with `Retry-After` (429): waits at least `at_least`, and at
    /// least the backoff's own next delay.
    pub fn retry_after(&mut self, at_least: Duration) -> Duration {
        self.next_delay().max(at_least)
    }

    /// The un-jittered delay after `failures` consecutive failures:
    /// `initial * factor^(failures-1)` capped at `max` (zero failures gives zero).
    /// Saturates instead of overflowing, and treats a factor below 1 (or not a number) as 1.
    pub fn nominal_delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        capped(self.raw_delay_secs(failures), self.config.max)
    }

    /// `initial * factor^(failures-1)` in seconds, before the cap (may be infinite).
    fn raw_delay_secs(&self, failures: u32) -> f64 {
        let BackoffConfig {
            initial, factor, ..
        } = self.config;
        // NaN and factors below 1 compare false: they mean "no growth".
        let factor = if factor >= 1.0 {
            factor.min(f64::MAX)
        } else {
            1.0
        };
        let exponent = i32::try_from(failures.saturating_sub(1)).unwrap_or(i32::MAX);
        initial.as_secs_f64() * factor.powi(exponent)
    }

    /// Reports that the target has been healthy (watching, events or bookmarks flowing) for
    /// `healthy_for`. Starts again from zero failures only when that is at least
    /// `reset_after`: a relist attempt or a short-lived watch does not reset the backoff.
    /// Returns true when it reset.
    pub fn record_healthy(&mut self, healthy_for: Duration) -> bool {
        if healthy_for >= self.config.reset_after {
            self.failures = 0;
            true
        } else {
            false
        }
    }

    /// Starts again from zero failures (explicit, e.g. after a policy change).
    pub fn reset(&mut self) {
        self.failures = 0;
    }
}

fn clamp_unit(x: f64) -> f64 {
    if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) }
}

/// `seconds` as a duration, at most `max` (also when it is infinite or not a number).
fn capped(seconds: f64, max: Duration) -> Duration {
    if !seconds.is_finite() || seconds >= max.as_secs_f64() {
        max
    } else {
        Duration::try_from_secs_f64(seconds).map_or(max, |d| d.min(max))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config(initial_ms: u64, max_ms: u64, factor: f64, jitter: f64) -> BackoffConfig {
        BackoffConfig {
            initial: Duration::from_millis(initial_ms),
            max: Duration::from_millis(max_ms),
            factor,
            jitter,
            reset_after: Duration::from_secs(60),
            max_retries: 0,
        }
    }

    #[test]
    fn without_jitter_delays_double_up_to_max() {
        let mut b = Backoff::with_seed(&config(100, 1_000, 2.0, 0.0), 1);
        let delays: Vec<u128> = (0..7).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1_000, 1_000, 1_000]);
        assert_eq!(b.failures(), 7);
    }

    #[test]
    fn jittered_delay_stays_within_its_band_and_varies() {
        // The first delay of fresh targets: always within (d(1-j), d], and spread.
        let cfg = config(1_000, 30_000, 2.0, 0.5);
        let delays: Vec<Duration> = (0..200)
            .map(|seed| Backoff::with_seed(&cfg, seed).next_delay())
            .collect();
        assert!(
            delays
                .iter()
                .all(|d| *d >= Duration::from_millis(500) && *d <= Duration::from_secs(1))
        );
        let distinct: std::collections::BTreeSet<_> = delays.iter().collect();
        assert!(
            distinct.len() > 100,
            "jitter spreads delays: {}",
            distinct.len()
        );
    }

    #[test]
    fn converged_backoff_waits_exactly_max_so_one_request_per_max() {
        // Once the exponential has grown past max/(1-j), jitter can no longer pull a delay
        // below the cap: a persistent outage costs one request per `max`, not more.
        let cfg = config(100, 1_000, 2.0, 0.5);
        let mut b = Backoff::with_seed(&cfg, 3);
        let delays: Vec<Duration> = (0..40).map(|_| b.next_delay()).collect();
        assert!(delays[..4].iter().all(|d| *d < Duration::from_secs(1)));
        assert!(
            delays[6..].iter().all(|d| *d == Duration::from_secs(1)),
            "{delays:?}"
        );
    }

    #[test]
    fn hundred_watches_failing_together_spread_their_retries() {
        // 100 watches cut at once, each with its own backoff: their first retries spread over
        // the jitter band instead of landing in the same millisecond.
        let cfg = config(1_000, 30_000, 2.0, 0.5);
        let mut per_ms = std::collections::BTreeMap::new();
        for _ in 0..100 {
            let delay = Backoff::new(&cfg).next_delay();
            assert!(delay >= Duration::from_millis(500) && delay <= Duration::from_secs(1));
            *per_ms.entry(delay.as_millis()).or_insert(0u32) += 1;
        }
        let busiest = per_ms.values().max().copied().unwrap_or(0);
        assert!(busiest <= 5, "{busiest} retries in the same millisecond");
        assert!(
            per_ms.len() >= 80,
            "only {} distinct milliseconds",
            per_ms.len()
        );
    }

    #[test]
    fn same_seed_gives_same_delays() {
        let cfg = config(50, 5_000, 1.5, 0.3);
        let mut a = Backoff::with_seed(&cfg, 42);
        let mut b = Backoff::with_seed(&cfg, 42);
        for _ in 0..20 {
            assert_eq!(a.next_delay(), b.next_delay());
        }
    }

    #[test]
    fn zero_initial_delay_is_raised_to_the_floor() {
        let mut b = Backoff::with_seed(&config(0, 0, 2.0, 1.0), 3);
        for _ in 0..50 {
            assert_eq!(b.next_delay(), MIN_DELAY);
        }
    }

    #[test]
    fn short_healthy_period_does_not_reset_but_long_one_does() {
        let mut b = Backoff::with_seed(&config(100, 10_000, 2.0, 0.0), 1);
        for _ in 0..5 {
            b.next_delay();
        }
        assert!(!b.record_healthy(Duration::from_secs(59)));
        assert_eq!(b.failures(), 5);
        assert_eq!(b.next_delay(), Duration::from_millis(3_200));
        assert!(b.record_healthy(Duration::from_secs(60)));
        assert_eq!(b.failures(), 0);
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }

    #[test]
    fn explicit_reset_and_new_config_start_from_initial() {
        let mut b = Backoff::with_seed(&config(100, 10_000, 2.0, 0.0), 1);
        b.next_delay();
        b.next_delay();
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
        b.set_config(&config(300, 10_000, 3.0, 0.0));
        assert_eq!(b.failures(), 0);
        assert_eq!(b.next_delay(), Duration::from_millis(300));
        assert_eq!(b.next_delay(), Duration::from_millis(900));
    }

    #[test]
    fn exhausted_after_exactly_max_retries() {
        let mut cfg = config(10, 100, 2.0, 0.0);
        cfg.max_retries = 3;
        let mut b = Backoff::with_seed(&cfg, 1);
        assert!(!b.exhausted());
        b.next_delay();
        b.next_delay();
        assert!(!b.exhausted());
        b.next_delay();
        assert!(b.exhausted());
        b.reset();
        assert!(!b.exhausted());
    }

    #[test]
    fn zero_max_retries_is_never_exhausted() {
        let mut b = Backoff::with_seed(&config(10, 100, 2.0, 0.0), 1);
        for _ in 0..10_000 {
            b.next_delay();
        }
        assert!(!b.exhausted());
    }

    #[test]
    fn retry_after_waits_at_least_the_server_hint_and_counts_a_failure() {
        let mut b = Backoff::with_seed(&config(100, 10_000, 2.0, 0.0), 1);
        assert_eq!(
            b.retry_after(Duration::from_secs(5)),
            Duration::from_secs(5)
        );
        assert_eq!(b.failures(), 1);
        // The backoff's own delay wins when it is longer.
        for _ in 0..10 {
            b.next_delay();
        }
        assert_eq!(
            b.retry_after(Duration::from_secs(1)),
            Duration::from_secs(10)
        );
    }

    #[test]
    fn huge_failure_counts_and_factors_saturate_at_max() {
        let b = Backoff::with_seed(&config(1, 30_000, 1e300, 0.0), 1);
        assert_eq!(b.nominal_delay(u32::MAX), Duration::from_secs(30));
        assert_eq!(b.nominal_delay(3), Duration::from_secs(30));
        let nan = Backoff::with_seed(&config(100, 30_000, f64::NAN, 0.0), 1);
        assert_eq!(nan.nominal_delay(50), Duration::from_millis(100));
    }

    fn arb_config() -> impl Strategy<Value = BackoffConfig> {
        (
            0u64..5_000,
            0u64..120_000,
            1.0f64..4.0,
            0.0f64..=1.0,
            0u64..600,
            0u32..20,
        )
            .prop_map(
                |(initial, max, factor, jitter, reset, retries)| BackoffConfig {
                    initial: Duration::from_millis(initial),
                    max: Duration::from_millis(max),
                    factor,
                    jitter,
                    reset_after: Duration::from_secs(reset),
                    max_retries: retries,
                },
            )
    }

    proptest! {
        #[test]
        fn every_delay_is_within_jitter_band_and_cap(cfg in arb_config(), seed: u64, steps in 1usize..80) {
            let mut b = Backoff::with_seed(&cfg, seed);
            for _ in 0..steps {
                let delay = b.next_delay();
                let d = b.nominal_delay(b.failures());
                prop_assert!(d <= cfg.max);
                let low = d.mul_f64(1.0 - cfg.jitter).max(MIN_DELAY);
                // One nanosecond of slack for float rounding of the lower bound.
                prop_assert!(delay + Duration::from_nanos(1) >= low, "{delay:?} < {low:?}");
                prop_assert!(delay <= d.max(MIN_DELAY), "{delay:?} > {d:?}");
                prop_assert!(delay >= MIN_DELAY);
            }
        }

        #[test]
        fn nominal_sequence_is_monotone_and_converges_to_max(cfg in arb_config()) {
            let b = Backoff::with_seed(&cfg, 0);
            let mut previous = Duration::ZERO;
            for n in 1..200u32 {
                let d = b.nominal_delay(n);
                prop_assert!(d >= previous);
                previous = d;
            }
            if cfg.factor >= 1.1 && !cfg.initial.is_zero() {
                // 1.1^199 * 1ms is far beyond 120 s: the cap is reached.
                prop_assert_eq!(previous, cfg.max);
            }
        }

        #[test]
        fn reset_only_after_reset_after_of_health(cfg in arb_config(), fails in 1u32..30, healthy_ms in 0u64..1_200_000) {
            let mut b = Backoff::with_seed(&cfg, 1);
            for _ in 0..fails {
                b.next_delay();
            }
            let healthy = Duration::from_millis(healthy_ms);
            let reset = b.record_healthy(healthy);
            prop_assert_eq!(reset, healthy >= cfg.reset_after);
            prop_assert_eq!(b.failures(), if reset { 0 } else { fails });
        }

        #[test]
        fn exhausted_exactly_after_max_retries(cfg in arb_config(), extra in 0u32..5) {
            let mut b = Backoff::with_seed(&cfg, 1);
            let n = cfg.max_retries;
            for i in 0..n + extra {
                prop_assert_eq!(b.exhausted(), n > 0 && i >= n);
                b.next_delay();
            }
            prop_assert_eq!(b.exhausted(), n > 0);
        }
    }
}

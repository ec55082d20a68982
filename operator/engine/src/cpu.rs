//! The CPU meter and budget of a pool.
//!
//! [`CpuMeter::metered`] wraps each of a pool's tasks: the CPU time spent inside every `poll` of
//! the task is added to the meter (measured as [`Metered`] explains), so the meter sees the work
//! of the pool's own code (decoding, caching, bookkeeping), not the rest of the process. Usage is kept in a
//! sliding window of [`BUCKETS`] one-second buckets; the average over the window is the pool's
//! use in millicores (during the first second it is taken over one second, so a new pool may
//! spend up to one second's worth of its budget at once).
//!
//! [`CpuMeter::admit`] is the budget: a task calls it before each unit of work, and when the
//! windowed average is over the limit it sleeps just long enough for the average to come back
//! under. The fast path is one atomic load: the meter decides whether it is over budget when it
//! records usage, not when it is asked.
//!
//! Usage is recorded when a poll ends: a task that handles many events without ever awaiting
//! something that is pending should `tokio::task::yield_now()` between batches, or the meter
//! (and every other task of its thread) waits for that poll to end.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use crate::health::CpuHealth;

/// Buckets of the sliding window.
pub const BUCKETS: usize = 10;
/// Width of one bucket.
pub const BUCKET: Duration = Duration::from_secs(1);
/// `throttled` stays true for this long after the last delay.
pub const THROTTLE_HOLD: Duration = Duration::from_secs(2);
/// Longest single sleep of [`CpuMeter::admit`] before it looks at the window again.
const MAX_SLEEP: Duration = Duration::from_millis(250);
/// Shortest sleep, so that a delay always yields the thread for a meaningful time.
const MIN_SLEEP: Duration = Duration::from_millis(1);

/// Measures the CPU time of a pool's tasks and holds them to a budget. Cheap to clone: clones
/// share the same meter.
#[derive(Clone, Debug)]
pub struct CpuMeter {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    limit_millis: AtomicU64,
    /// Set when the last recording found the window over budget; cleared by `admit`.
    over: AtomicBool,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    start: Instant,
    /// CPU nanoseconds per bucket; bucket `n` (seconds since `start`) lives at `n % BUCKETS`.
    buckets: [u64; BUCKETS],
    /// The newest bucket number written or cleared.
    head: u64,
    total_nanos: u128,
    throttled_nanos: u128,
    /// Tasks currently held by `admit`, and since when at least one has been.
    waiters: usize,
    held_since: Option<Instant>,
    last_delay: Option<Instant>,
}

impl State {
    fn bucket_of(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.start);
        u64::try_from(elapsed.as_nanos() / BUCKET.as_nanos()).unwrap_or(u64::MAX)
    }

    /// Clears the buckets that fell out of the window by `bucket`.
    fn advance(&mut self, bucket: u64) {
        if bucket <= self.head {
            return;
        }
        let stale = (bucket - self.head).min(BUCKETS as u64);
        for step in 0..stale {
            let n = bucket - step;
            self.buckets[(n % BUCKETS as u64) as usize] = 0;
        }
        self.head = bucket;
    }

    fn add(&mut self, now: Instant, nanos: u64) {
        let bucket = self.bucket_of(now);
        self.advance(bucket);
        // A recording that raced a newer one lands in its own bucket if still in the window.
        if self.head - bucket < BUCKETS as u64 {
            let slot = &mut self.buckets[(bucket % BUCKETS as u64) as usize];
            *slot = slot.saturating_add(nanos);
        }
        self.total_nanos += u128::from(nanos);
    }

    /// CPU nanoseconds in the window and the window's length (at least one second).
    fn usage(&mut self, now: Instant) -> (u64, Duration) {
        let bucket = self.bucket_of(now);
        self.advance(bucket);
        let used = self.buckets.iter().fold(0u64, |a, b| a.saturating_add(*b));
        let first = self.head.saturating_sub(BUCKETS as u64 - 1);
        let window_start = self.start + BUCKET * u32::try_from(first).unwrap_or(u32::MAX);
        let span = now.saturating_duration_since(window_start).max(BUCKET);
        (used, span)
    }

    /// How long to wait for the average to come back under `limit_millis`; `None` when under.
    fn excess(&mut self, now: Instant, limit_millis: u64) -> Option<Duration> {
        if limit_millis == 0 {
            return None;
        }
        let (used, span) = self.usage(now);
        // The span over which `used` nanoseconds average exactly `limit_millis`.
        let needed_nanos = u128::from(used) * 1_000 / u128::from(limit_millis);
        let span_nanos = span.as_nanos();
        (needed_nanos > span_nanos).then(|| {
            Duration::from_nanos(u64::try_from(needed_nanos - span_nanos).unwrap_or(u64::MAX))
        })
    }

    fn throttled_total(&self, now: Instant) -> u128 {
        self.throttled_nanos
            + self
                .held_since
                .map_or(0, |since| now.saturating_duration_since(since).as_nanos())
    }
}

impl CpuMeter {
    /// A meter with a budget of `limit_millis` millicores (`0` = no budget, never delays).
    pub fn new(limit_millis: u64) -> Self {
        Self {
            inner: Arc::new(Inner {
                limit_millis: AtomicU64::new(limit_millis),
                over: AtomicBool::new(false),
                state: Mutex::new(State {
                    start: Instant::now(),
                    buckets: [0; BUCKETS],
                    head: 0,
                    total_nanos: 0,
                    throttled_nanos: 0,
                    waiters: 0,
                    held_since: None,
                    last_delay: None,
                }),
            }),
        }
    }

    /// The budget in millicores.
    pub fn limit_millis(&self) -> u64 {
        self.inner.limit_millis.load(Ordering::Relaxed)
    }

    /// Changes the budget (policy reconfigured); takes effect at the next [`CpuMeter::admit`].
    pub fn set_limit(&self, limit_millis: u64) {
        self.inner
            .limit_millis
            .store(limit_millis, Ordering::Relaxed);
        // Let the next admit look at the window with the new limit.
        self.inner.over.store(true, Ordering::Relaxed);
    }

    /// Wraps a future so that the thread CPU time of each of its polls is added to this meter.
    pub fn metered<F: Future>(&self, fut: F) -> Metered<F> {
        Metered {
            inner: Box::pin(fut),
            meter: self.clone(),
            polls: 0,
            share: CpuShare::new(),
        }
    }

    /// Adds CPU time spent on the pool's behalf outside a metered future.
    pub fn record(&self, cpu: Duration) {
        let nanos = u64::try_from(cpu.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return;
        }
        let limit = self.limit_millis();
        let now = Instant::now();
        let mut state = self.lock();
        state.add(now, nanos);
        if state.excess(now, limit).is_some() {
            self.inner.over.store(true, Ordering::Relaxed);
        }
    }

    /// Waits, if the pool is over its budget on average, until it is back under. Returns at
    /// once otherwise (one atomic load), except that it also spends one unit of tokio's
    /// cooperative budget: a task that calls it for every event yields now and then even when
    /// its input is always ready, so each poll stays short and is metered promptly.
    /// Cancel-safe.
    pub async fn admit(&self) {
        if !self.inner.over.load(Ordering::Relaxed) {
            tokio::task::consume_budget().await;
            return;
        }
        let mut guard: Option<WaitGuard<'_>> = None;
        loop {
            let now = Instant::now();
            let wait = self.lock().excess(now, self.limit_millis());
            let Some(wait) = wait else { break };
            if guard.is_none() {
                guard = Some(WaitGuard::enter(self, now));
            }
            tokio::time::sleep(wait.clamp(MIN_SLEEP, MAX_SLEEP)).await;
        }
        self.inner.over.store(false, Ordering::Relaxed);
        drop(guard);
    }

    /// The pool's CPU use and budget now.
    pub fn snapshot(&self) -> CpuHealth {
        let limit_millis = self.limit_millis();
        let now = Instant::now();
        let mut state = self.lock();
        let (used, span) = state.usage(now);
        let throttled = state.waiters > 0
            || state
                .last_delay
                .is_some_and(|at| now.saturating_duration_since(at) < THROTTLE_HOLD);
        CpuHealth {
            // Nanoseconds of CPU per second of wall time / 10^6 = millicores.
            used_millis: used as f64 / 1e6 / span.as_secs_f64(),
            limit_millis,
            throttled,
            cpu_seconds_total: state.total_nanos as f64 / 1e9,
            throttled_seconds_total: state.throttled_total(now) as f64 / 1e9,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent even if a holder panicked: every update is a plain store.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Counts a task held by `admit`, for the throttled time and flag; released on drop, so a
/// cancelled `admit` is accounted too.
struct WaitGuard<'a> {
    meter: &'a CpuMeter,
}

impl<'a> WaitGuard<'a> {
    fn enter(meter: &'a CpuMeter, now: Instant) -> Self {
        let mut state = meter.lock();
        if state.waiters == 0 {
            state.held_since = Some(now);
        }
        state.waiters += 1;
        Self { meter }
    }
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        let now = Instant::now();
        let mut state = self.meter.lock();
        state.waiters = state.waiters.saturating_sub(1);
        state.last_delay = Some(now);
        if state.waiters == 0
            && let Some(since) = state.held_since.take()
        {
            state.throttled_nanos += now.saturating_duration_since(since).as_nanos();
        }
    }
}

/// A future whose polls are metered by a [`CpuMeter`]; see [`CpuMeter::metered`].
///
/// The thread's CPU clock (`CLOCK_THREAD_CPUTIME_ID`) is a real system call, not served by the
/// vDSO: about 0.5 µs each on a virtual machine, two per poll, which is as much as a small watch
/// event costs to decode. So every poll is timed with the monotonic clock (vDSO, ~20 ns), and
/// one poll in [`SAMPLE_EVERY`] (the first one included) is timed with both: the share of wall
/// time that was CPU time in the sampled polls scales the wall time of the others. On an idle
/// core the share is 1 and the two clocks agree; when the thread is preempted inside polls the
/// share falls and the meter still counts CPU, not waiting.
#[derive(Debug)]
pub struct Metered<F> {
    inner: Pin<Box<F>>,
    meter: CpuMeter,
    polls: u64,
    share: CpuShare,
}

/// One poll in this many reads the thread's CPU clock.
pub const SAMPLE_EVERY: u64 = 16;

/// The CPU time over wall time of the sampled polls, as a moving average.
#[derive(Debug, Clone, Copy)]
struct CpuShare {
    cpu: f64,
    wall: f64,
}

impl CpuShare {
    /// Sampled polls' weight fades by this factor per sample (about the last 16 samples count).
    const DECAY: f64 = 15.0 / 16.0;

    fn new() -> Self {
        // No sample yet: `ratio` counts wall time in full. The first poll is sampled, and from
        // zero its sample is the whole average.
        Self {
            cpu: 0.0,
            wall: 0.0,
        }
    }

    fn observe(&mut self, cpu: Duration, wall: Duration) {
        self.cpu = self.cpu * Self::DECAY + cpu.as_secs_f64();
        self.wall = self.wall * Self::DECAY + wall.as_secs_f64();
    }

    fn ratio(&self) -> f64 {
        if self.wall > 0.0 {
            (self.cpu / self.wall).clamp(0.0, 1.0)
        } else {
            1.0
        }
    }

    fn scale(&self, wall: Duration) -> Duration {
        wall.mul_f64(self.ratio())
    }
}

impl<F: Future> Future for Metered<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let sampled = this.polls.is_multiple_of(SAMPLE_EVERY);
        this.polls = this.polls.wrapping_add(1);
        let cpu_start = if sampled {
            cpu_time::ThreadTime::try_now().ok()
        } else {
            None
        };
        let wall_start = std::time::Instant::now();
        let result = this.inner.as_mut().poll(cx);
        let wall = wall_start.elapsed();
        let spent = match cpu_start.and_then(|s| s.try_elapsed().ok()) {
            Some(cpu) => {
                this.share.observe(cpu, wall);
                cpu
            }
            None => this.share.scale(wall),
        };
        this.meter.record(spent);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy(duration: Duration) -> u64 {
        let start = cpu_time::ThreadTime::now();
        let mut x: u64 = 1;
        while start.elapsed() < duration {
            for i in 0..1_000u64 {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(i);
            }
        }
        x
    }

    #[tokio::test]
    async fn metered_accounts_cpu_of_a_busy_future() {
        let meter = CpuMeter::new(0);
        let out = meter
            .metered(async { std::hint::black_box(busy(Duration::from_millis(60))) })
            .await;
        std::hint::black_box(out);
        let cpu = meter.snapshot().cpu_seconds_total;
        assert!((0.055..0.5).contains(&cpu), "cpu {cpu}");
    }

    #[tokio::test]
    async fn metered_accounts_almost_nothing_for_an_idle_future() {
        let meter = CpuMeter::new(0);
        meter
            .metered(tokio::time::sleep(Duration::from_millis(200)))
            .await;
        let cpu = meter.snapshot().cpu_seconds_total;
        assert!(cpu < 0.005, "cpu {cpu}");
    }

    /// A future that blocks its thread in every poll without using the CPU (a preempted or
    /// descheduled thread looks like this to a wall clock), then yields, `polls` times.
    struct Blocking {
        left: u32,
        each: Duration,
    }

    impl Future for Blocking {
        type Output = ();
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            std::thread::sleep(self.each);
            if self.left == 0 {
                return Poll::Ready(());
            }
            self.left -= 1;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn wall_time_of_unsampled_polls_is_scaled_by_the_sampled_cpu_share() {
        // 64 polls of 2 ms wall time each and almost no CPU: a meter counting wall time would
        // see 128 ms; the sampled share (near 0) keeps the count near the real CPU time.
        let meter = CpuMeter::new(0);
        meter
            .metered(Blocking {
                left: 63,
                each: Duration::from_millis(2),
            })
            .await;
        let cpu = meter.snapshot().cpu_seconds_total;
        assert!(cpu < 0.02, "cpu {cpu}");
    }

    #[tokio::test]
    async fn busy_polls_are_counted_in_full_whether_sampled_or_not() {
        // 40 polls of 3 ms of CPU each: the unsampled ones are scaled by a share near 1.
        let meter = CpuMeter::new(0);
        let mut left = 40u32;
        meter
            .metered(std::future::poll_fn(move |cx| {
                std::hint::black_box(busy(Duration::from_millis(3)));
                if left == 0 {
                    return Poll::Ready(());
                }
                left -= 1;
                cx.waker().wake_by_ref();
                Poll::Pending
            }))
            .await;
        let cpu = meter.snapshot().cpu_seconds_total;
        assert!((0.110..0.3).contains(&cpu), "cpu {cpu}");
    }

    #[test]
    fn share_is_bounded_and_follows_recent_samples() {
        let mut share = CpuShare::new();
        assert_eq!(share.ratio(), 1.0);
        share.observe(Duration::from_millis(2), Duration::from_millis(1));
        assert_eq!(share.ratio(), 1.0);
        for _ in 0..64 {
            share.observe(Duration::from_micros(250), Duration::from_millis(1));
        }
        assert!((share.ratio() - 0.25).abs() < 0.02, "{}", share.ratio());
        let scaled = share.scale(Duration::from_millis(4)).as_micros();
        assert!(scaled.abs_diff(1_000) < 100, "{scaled}");
    }

    #[tokio::test(start_paused = true)]
    async fn admit_returns_at_once_under_budget() {
        let meter = CpuMeter::new(100);
        meter.record(Duration::from_millis(50));
        let before = Instant::now();
        meter.admit().await;
        assert_eq!(before.elapsed(), Duration::ZERO);
        assert!(!meter.snapshot().throttled);
    }

    #[tokio::test(start_paused = true)]
    async fn admit_waits_until_the_average_is_back_under_budget() {
        let meter = CpuMeter::new(100);
        // 500 ms of CPU at once: the average is back to 100m after 5 s.
        meter.record(Duration::from_millis(500));
        let before = Instant::now();
        meter.admit().await;
        let waited = before.elapsed();
        assert!(
            waited >= Duration::from_millis(4_990) && waited <= Duration::from_millis(5_300),
            "waited {waited:?}"
        );
        let snap = meter.snapshot();
        assert!(snap.used_millis <= 100.0 + 1e-6, "{snap:?}");
        assert!(snap.throttled);
        assert!((snap.throttled_seconds_total - waited.as_secs_f64()).abs() < 1e-3);
        tokio::time::sleep(THROTTLE_HOLD).await;
        assert!(!meter.snapshot().throttled);
    }

    #[tokio::test(start_paused = true)]
    async fn usage_leaves_the_window_after_it_slides_past() {
        let meter = CpuMeter::new(1_000);
        meter.record(Duration::from_millis(300));
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!((meter.snapshot().used_millis - 300.0).abs() < 1e-6);
        tokio::time::sleep(BUCKET * BUCKETS as u32).await;
        let snap = meter.snapshot();
        assert_eq!(snap.used_millis, 0.0);
        assert!((snap.cpu_seconds_total - 0.3).abs() < 1e-9);
    }

    #[tokio::test(start_paused = true)]
    async fn raising_the_limit_releases_a_throttled_pool() {
        let meter = CpuMeter::new(10);
        meter.record(Duration::from_millis(500));
        meter.set_limit(1_000);
        let before = Instant::now();
        meter.admit().await;
        assert_eq!(before.elapsed(), Duration::ZERO);
        assert_eq!(meter.snapshot().limit_millis, 1_000);
    }

    #[tokio::test]
    async fn admit_in_a_loop_without_io_still_ends_polls() {
        // A task whose input is always ready: without a yield its single poll would run to the
        // end and the meter would see nothing until then.
        let meter = CpuMeter::new(0);
        let inner = meter.clone();
        let polls = std::sync::Arc::new(AtomicU64::new(0));
        let counter = polls.clone();
        let task = meter.metered(async move {
            for _ in 0..1_000 {
                inner.admit().await;
            }
        });
        let counted = CountPolls {
            inner: Box::pin(task),
            polls: counter,
        };
        counted.await;
        assert!(polls.load(Ordering::Relaxed) >= 5, "{polls:?}");
    }

    struct CountPolls<F> {
        inner: Pin<Box<F>>,
        polls: std::sync::Arc<AtomicU64>,
    }

    impl<F: Future> Future for CountPolls<F> {
        type Output = F::Output;
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
            let this = self.get_mut();
            this.polls.fetch_add(1, Ordering::Relaxed);
            this.inner.as_mut().poll(cx)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn zero_limit_never_delays() {
        let meter = CpuMeter::new(0);
        meter.record(Duration::from_secs(5));
        let before = Instant::now();
        meter.admit().await;
        assert_eq!(before.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_waiters_count_wall_time_once() {
        let meter = CpuMeter::new(100);
        meter.record(Duration::from_millis(300));
        let (a, b) = (meter.clone(), meter.clone());
        let before = Instant::now();
        tokio::join!(a.admit(), b.admit());
        let waited = before.elapsed().as_secs_f64();
        let total = meter.snapshot().throttled_seconds_total;
        assert!((total - waited).abs() < 0.01, "{total} vs {waited}");
    }

    #[tokio::test(start_paused = true)]
    async fn cancelled_admit_is_still_accounted() {
        let meter = CpuMeter::new(100);
        meter.record(Duration::from_millis(800));
        let cancelled = tokio::time::timeout(Duration::from_millis(1_500), meter.admit()).await;
        assert!(cancelled.is_err());
        let snap = meter.snapshot();
        assert!(
            (snap.throttled_seconds_total - 1.5).abs() < 0.01,
            "{snap:?}"
        );
        assert!(snap.throttled);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// (milliseconds to wait, CPU milliseconds to record) steps.
        fn steps() -> impl Strategy<Value = Vec<(u64, u64)>> {
            proptest::collection::vec((0u64..3_000, 0u64..400), 1..40)
        }

        fn paused_runtime() -> tokio::runtime::Runtime {
            tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            #[test]
            fn window_average_is_bounded_by_the_last_nine_and_ten_seconds(steps in steps(), tail in 0u64..3_000) {
                paused_runtime().block_on(async {
                    let meter = CpuMeter::new(0);
                    let start = Instant::now();
                    let mut records: Vec<(Duration, u64)> = Vec::new();
                    for (wait, cpu) in &steps {
                        tokio::time::sleep(Duration::from_millis(*wait)).await;
                        meter.record(Duration::from_millis(*cpu));
                        records.push((start.elapsed(), *cpu));
                    }
                    tokio::time::sleep(Duration::from_millis(tail)).await;
                    let now = start.elapsed();
                    let snap = meter.snapshot();
                    let total: u64 = records.iter().map(|(_, c)| c).sum();
                    prop_assert!((snap.cpu_seconds_total - total as f64 / 1e3).abs() < 1e-9);
                    let since = |secs: u64| -> f64 {
                        records
                            .iter()
                            .filter(|(at, _)| *at + Duration::from_secs(secs) > now)
                            .map(|(_, c)| *c as f64)
                            .sum()
                    };
                    // Used CPU in the window, in milliseconds, and the window's span.
                    let used_ms = snap.used_millis;
                    if now >= Duration::from_secs(10) {
                        // The window starts between 10 s and 9 s ago.
                        prop_assert!(used_ms * 10.0 + 1e-6 >= since(9), "{used_ms} {}", since(9));
                        prop_assert!(used_ms * 9.0 <= since(10) + 1e-6, "{used_ms} {}", since(10));
                    } else {
                        let span = now.as_secs_f64().max(1.0);
                        prop_assert!((used_ms * span - total as f64).abs() < 1e-6, "{used_ms} {span} {total}");
                    }
                    Ok(())
                })?;
            }

            #[test]
            fn after_admit_the_average_is_within_the_budget(steps in steps(), limit in 1u64..2_000) {
                paused_runtime().block_on(async {
                    let meter = CpuMeter::new(limit);
                    for (wait, cpu) in &steps {
                        tokio::time::sleep(Duration::from_millis(*wait)).await;
                        meter.record(Duration::from_millis(*cpu));
                        let before = meter.snapshot();
                        let at = Instant::now();
                        meter.admit().await;
                        let after = meter.snapshot();
                        prop_assert!(after.used_millis <= limit as f64 * (1.0 + 1e-9), "{after:?}");
                        if before.used_millis <= limit as f64 {
                            prop_assert_eq!(at.elapsed(), Duration::ZERO);
                        }
                    }
                    Ok(())
                })?;
            }
        }
    }
}

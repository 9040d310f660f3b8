//! When to try again: exponential backoff with jitter (computed by `backon`), Tallyfy's
//! Retry-After for 429s, and the clock every delivery decision reads so tests can move time.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::configuration::DeliverySettings;

/// Time a worker keeps between its last call's deadline and the end of its lease: start-up
/// refuses a lease that leaves less, and each attempt's calls must end this long before it.
pub const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// Milliseconds since the Unix epoch, as stored in the outbox.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        crate::time::now_ms()
    }
}

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    backoff: ExponentialBuilder,
    pub max_attempts: u32,
    /// 0 = no limit.
    pub max_age: Duration,
    pub rate_limit_default: Duration,
}

impl RetryPolicy {
    pub fn from_settings(settings: &DeliverySettings) -> Self {
        Self {
            backoff: ExponentialBuilder::new()
                .with_min_delay(settings.retry_base)
                .with_max_delay(settings.retry_cap)
                .with_factor(2.0)
                .with_jitter()
                .without_max_times(),
            max_attempts: settings.max_attempts,
            max_age: settings.max_age,
            rate_limit_default: settings.rate_limit_default,
        }
    }

    /// Wait after failed attempt number `attempt` (1-based): base·2^(attempt-1), capped, plus
    /// up to the same again as jitter so that a burst of failures does not retry in lockstep.
    pub fn delay_after(&self, attempt: i64) -> Duration {
        let index = usize::try_from(attempt.max(1) - 1).unwrap_or(0);
        self.backoff
            .build()
            .nth(index)
            .unwrap_or(Duration::from_secs(3600))
    }

    /// True when a row that just failed attempt `attempt` must not be tried again.
    pub fn exhausted(&self, attempt: i64, age: Duration) -> bool {
        attempt >= i64::from(self.max_attempts) || (!self.max_age.is_zero() && age >= self.max_age)
    }

    /// How long a 429 holds all delivery: Tallyfy's Retry-After, clamped to [1 s, 1 h].
    pub fn rate_limit_wait(&self, retry_after: Option<Duration>) -> Duration {
        retry_after
            .unwrap_or(self.rate_limit_default)
            .clamp(Duration::from_secs(1), Duration::from_secs(3600))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::from_settings(&DeliverySettings {
            enabled: true,
            concurrency: 1,
            lease: Duration::from_secs(90),
            retry_base: Duration::from_millis(1000),
            retry_cap: Duration::from_millis(60_000),
            max_attempts: 5,
            max_age: Duration::from_secs(3600),
            rate_limit_default: Duration::from_secs(60),
            paused_probe: Duration::from_secs(60),
            idle_poll: Duration::from_millis(1000),
            max_creates_per_hour: 30,
            create_window: Duration::from_secs(3600),
        })
    }

    #[test]
    fn delays_grow_exponentially_within_jitter_and_stop_at_the_cap() {
        let policy = policy();
        for (attempt, base_ms) in [(1, 1000), (2, 2000), (3, 4000), (4, 8000), (10, 60_000)] {
            let delay = policy.delay_after(attempt).as_millis() as u64;
            assert!(
                (base_ms..=2 * base_ms).contains(&delay),
                "attempt {attempt}: {delay} ms not in [{base_ms}, {}]",
                2 * base_ms
            );
        }
    }

    #[test]
    fn attempts_and_age_both_exhaust() {
        let policy = policy();
        assert!(!policy.exhausted(4, Duration::from_secs(10)));
        assert!(policy.exhausted(5, Duration::from_secs(10)));
        assert!(policy.exhausted(1, Duration::from_secs(3600)));
    }

    #[test]
    fn retry_after_is_honoured_and_clamped() {
        let policy = policy();
        assert_eq!(
            policy.rate_limit_wait(Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(policy.rate_limit_wait(None), Duration::from_secs(60));
        assert_eq!(
            policy.rate_limit_wait(Some(Duration::ZERO)),
            Duration::from_secs(1)
        );
        assert_eq!(
            policy.rate_limit_wait(Some(Duration::from_secs(86_400))),
            Duration::from_secs(3600)
        );
    }
}

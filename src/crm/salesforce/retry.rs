//! How long a Salesforce call waits before trying again: Salesforce has no per-second rate, only
//! a daily request limit, so the waits are for 429s and 5xx (and a limit's Retry-After), bounded.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

/// The retry schedule of one call; an argument of the lister, so tests pass one without waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Retries after the first try (so a call is sent at most `retries + 1` times).
    pub retries: u32,
    /// The wait before the first retry without a Retry-After; doubled for each further one.
    pub first_delay: Duration,
    /// The longest wait: a Retry-After beyond it ends the call rather than stall the run.
    pub max_wait: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Self {
            retries: 3,
            first_delay: Duration::from_secs(1),
            max_wait: Duration::from_secs(60),
        }
    }
}

impl Retry {
    /// The same count of retries without waiting (tests).
    pub fn immediate() -> Self {
        Self {
            first_delay: Duration::ZERO,
            ..Self::default()
        }
    }

    /// The wait before retry `retry` (0 for the first), or `None` to give up: out of retries,
    /// or told to wait longer than `max_wait`.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if retry >= self.retries {
            return None;
        }
        match retry_after {
            Some(wait) if wait > self.max_wait => None,
            Some(wait) => Some(wait),
            // Doubling from `first_delay` up to `max_wait`, as `backon` computes it.
            None => ExponentialBuilder::new()
                .with_min_delay(self.first_delay)
                .with_max_delay(self.max_wait)
                .with_factor(2.0)
                .without_max_times()
                .build()
                .nth(retry as usize),
        }
    }

    /// Waits before retry `retry`; false (at once) when the call should give up instead.
    pub(super) async fn pause(&self, retry: u32, retry_after: Option<Duration>) -> bool {
        match self.delay(retry, retry_after) {
            Some(wait) => {
                tokio::time::sleep(wait).await;
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    #[test]
    fn waits_double_up_to_the_cap_and_a_long_retry_after_gives_up() {
        let retry = Retry {
            retries: 5,
            first_delay: Duration::from_secs(10),
            max_wait: Duration::from_secs(30),
        };
        let secs = |r, after| retry.delay(r, after).map(|d: Duration| d.as_secs());
        assert_eq!(
            (0..6).map(|r| secs(r, None)).collect::<Vec<_>>(),
            [Some(10), Some(20), Some(30), Some(30), Some(30), None]
        );
        assert_eq!(secs(0, Some(Duration::from_secs(5))), Some(5));
        assert_eq!(secs(0, Some(Duration::from_secs(31))), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_waits_out_its_schedule_then_gives_up_at_once() {
        let retry = Retry::default();
        let started = Instant::now();
        for r in 0..3 {
            assert!(retry.pause(r, None).await);
        }
        assert_eq!(started.elapsed(), Duration::from_secs(1 + 2 + 4));
        assert!(!retry.pause(3, None).await);
        assert!(!retry.pause(0, Some(Duration::from_secs(3600))).await);
        assert_eq!(started.elapsed(), Duration::from_secs(7));
    }
}

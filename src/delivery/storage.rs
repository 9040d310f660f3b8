//! The worker's view of its own database. While storage fails (disk full, I/O errors, a lock
//! held past the busy timeout) the loop backs off instead of spinning, and says so once at ERROR
//! when the trouble starts and once at INFO when it ends.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};

const FIRST_WAIT: Duration = Duration::from_millis(100);
const LONGEST_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub(super) struct StorageHealth {
    /// Failures in a row since storage last worked.
    failures: u32,
    /// The waits of the current trouble; None while storage works.
    backoff: Option<ExponentialBackoff>,
    /// How long the loop waits before it touches storage again.
    wait: Option<Duration>,
}

impl StorageHealth {
    /// A storage operation failed: the loop waits (see [`Self::backing_off`]) before the next.
    pub(super) fn failed(&mut self, what: &str, error: &anyhow::Error) {
        self.failures += 1;
        if self.failures == 1 {
            tracing::error!(
                error = %format!("{error:#}"),
                "Storage is failing (failed to {what}): delivery waits and retries with backoff"
            );
        } else {
            tracing::debug!(error = %format!("{error:#}"), failures = self.failures, "Storage still failing (failed to {what})");
        }
        let wait = self
            .backoff
            .get_or_insert_with(|| {
                ExponentialBuilder::new()
                    .with_min_delay(FIRST_WAIT)
                    .with_max_delay(LONGEST_WAIT)
                    .with_factor(2.0)
                    .without_max_times()
                    .build()
            })
            .next()
            .unwrap_or(LONGEST_WAIT);
        self.wait = Some(wait);
    }

    /// A storage operation worked again.
    pub(super) fn worked(&mut self) {
        if self.failures > 0 {
            tracing::info!(
                failures = self.failures,
                "Storage works again: delivery resumes"
            );
        }
        *self = Self::default();
    }

    /// The wait is over: the next operation may run (its result decides what comes next).
    pub(super) fn retry_now(&mut self) {
        self.wait = None;
    }

    /// While failing: how long the loop must wait before touching storage again.
    pub(super) fn backing_off(&self) -> Option<Duration> {
        self.wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_from_a_tenth_of_a_second_up_to_thirty_and_reset_once_storage_works() {
        let mut health = StorageHealth::default();
        let error = anyhow::anyhow!("database or disk is full");
        let waits: Vec<u128> = (0..12)
            .map(|_| {
                health.failed("claim rows", &error);
                health.backing_off().expect("waiting").as_millis()
            })
            .collect();
        assert_eq!(
            waits,
            [
                100, 200, 400, 800, 1600, 3200, 6400, 12_800, 25_600, 30_000, 30_000, 30_000
            ]
        );
        assert_eq!(health.backing_off(), Some(Duration::from_secs(30)));
        health.worked();
        assert_eq!(health.backing_off(), None);
        health.failed("claim rows", &error);
        assert_eq!(health.backing_off(), Some(FIRST_WAIT));
    }
}

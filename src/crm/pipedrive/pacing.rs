//! How reconcile and connect keep within Pipedrive's rate limits: a 429 waits for Retry-After
//! (else `x-ratelimit-reset`, else the 2-second window) a bounded number of times; a spent daily
//! token budget, or a wait longer than allowed, ends the run; a burst window left empty is
//! waited out before the next request.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::api::Answer;
use crate::crm::FetchError;
use crate::crm::listing::ListStats;

/// Waits out a rate limit: production sleeps on tokio's clock; tests record the waits asked.
#[async_trait::async_trait]
pub trait Pause: Send + Sync {
    async fn pause(&self, wait: Duration);
}

/// `tokio::time::sleep`.
#[derive(Debug, Clone, Copy)]
pub struct Sleep;

#[async_trait::async_trait]
impl Pause for Sleep {
    async fn pause(&self, wait: Duration) {
        tokio::time::sleep(wait).await;
    }
}

#[derive(Clone)]
pub struct Pacing {
    /// 429s waited out for one request before the run stops (the next run reads the window
    /// again from its watermark).
    pub retries: u32,
    /// The longest wait taken: a longer Retry-After stops the run instead of holding it.
    pub max_wait: Duration,
    /// The wait when a 429 (or an empty burst window) names none: Pipedrive's window is 2 s.
    pub default_wait: Duration,
    pub pause: Arc<dyn Pause>,
}

impl Default for Pacing {
    fn default() -> Self {
        Self {
            retries: 5,
            max_wait: Duration::from_secs(60),
            default_wait: Duration::from_secs(2),
            pause: Arc::new(Sleep),
        }
    }
}

impl fmt::Debug for Pacing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pacing")
            .field("retries", &self.retries)
            .field("max_wait", &self.max_wait)
            .field("default_wait", &self.default_wait)
            .finish_non_exhaustive()
    }
}

/// The error when the company's daily budget is spent: it resets at midnight, so no run waits.
pub(super) fn budget_spent() -> FetchError {
    FetchError::Transient {
        status: Some(429),
        detail: "Pipedrive's daily API token budget is spent \
                 (x-daily-ratelimit-token-remaining: 0); it resets at midnight"
            .into(),
    }
}

impl Pacing {
    /// Calls `send` until it answers, waiting out 429s within the bounds; every request and
    /// every 429 is counted in `stats`.
    pub(super) async fn call<F, Fut>(
        &self,
        stats: &mut ListStats,
        mut send: F,
    ) -> Result<Vec<u8>, FetchError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Answer>,
    {
        let mut limited = 0;
        loop {
            stats.requests += 1;
            let (answer, limits) = send().await;
            let retry_after = match answer {
                Ok(body) => {
                    if limits.burst_left == Some(0) {
                        let wait = limits.burst_reset.unwrap_or(self.default_wait);
                        self.pause.pause(wait.min(self.max_wait)).await;
                    }
                    return Ok(body);
                }
                Err(FetchError::RateLimited { retry_after }) => retry_after,
                Err(error) => return Err(error),
            };
            stats.rate_limited += 1;
            if limits.daily_budget_spent() {
                return Err(budget_spent());
            }
            let wait = retry_after.unwrap_or(self.default_wait);
            limited += 1;
            if limited > self.retries || wait > self.max_wait {
                return Err(FetchError::RateLimited {
                    retry_after: Some(wait),
                });
            }
            self.pause.pause(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::sync::Mutex;

    use super::super::api::Limits;
    use super::*;

    /// The waits asked for, without a clock (the lib's tests run without tokio's test-util).
    #[derive(Default)]
    struct Recorded(Mutex<Vec<Duration>>);

    #[async_trait::async_trait]
    impl Pause for Recorded {
        async fn pause(&self, wait: Duration) {
            self.0.lock().expect("waits").push(wait);
        }
    }

    fn pacing(retries: u32) -> (Pacing, Arc<Recorded>) {
        let recorded = Arc::new(Recorded::default());
        let pacing = Pacing {
            retries,
            pause: recorded.clone(),
            ..Pacing::default()
        };
        (pacing, recorded)
    }

    fn waits(recorded: &Recorded) -> Vec<u64> {
        let waits = recorded.0.lock().expect("waits");
        waits.iter().map(Duration::as_secs).collect()
    }

    fn limited(retry_after: Option<u64>) -> Answer {
        let error = FetchError::RateLimited {
            retry_after: retry_after.map(Duration::from_secs),
        };
        (Err(error), Limits::default())
    }

    /// Answers `script` in order, then 200s.
    async fn run(pacing: &Pacing, script: Vec<Answer>) -> (Result<Vec<u8>, FetchError>, ListStats) {
        let script = Mutex::new(VecDeque::from(script));
        let mut stats = ListStats::default();
        let answer = pacing
            .call(&mut stats, || {
                let next = script.lock().expect("script").pop_front();
                async move { next.unwrap_or((Ok(b"ok".to_vec()), Limits::default())) }
            })
            .await;
        (answer, stats)
    }

    #[tokio::test]
    async fn a_429_is_waited_out_for_as_long_as_it_asks_else_the_window() {
        let (pacing, recorded) = pacing(5);
        let (answer, stats) = run(&pacing, vec![limited(Some(3)), limited(None)]).await;
        assert_eq!(answer, Ok(b"ok".to_vec()));
        assert_eq!(waits(&recorded), [3, 2]);
        assert_eq!((stats.requests, stats.rate_limited), (3, 2));
    }

    #[tokio::test]
    async fn an_empty_burst_window_is_waited_out_before_the_next_request() {
        let (pacing, recorded) = pacing(5);
        let spent = Limits {
            burst_left: Some(0),
            burst_reset: Some(Duration::from_secs(1)),
            daily_left: None,
        };
        let (answer, stats) = run(&pacing, vec![(Ok(b"page".to_vec()), spent)]).await;
        assert_eq!(answer, Ok(b"page".to_vec()));
        assert_eq!(waits(&recorded), [1]);
        assert_eq!((stats.requests, stats.rate_limited), (1, 0));
    }

    #[tokio::test]
    async fn retries_are_bounded() {
        let (pacing, recorded) = pacing(2);
        let script = vec![limited(Some(1)), limited(Some(1)), limited(Some(1))];
        let (answer, stats) = run(&pacing, script).await;
        assert!(matches!(answer, Err(FetchError::RateLimited { .. })));
        assert_eq!((stats.requests, stats.rate_limited), (3, 3));
        assert_eq!(waits(&recorded), [1, 1]);
    }

    #[tokio::test]
    async fn a_long_wait_or_a_spent_daily_budget_ends_the_run_without_waiting() {
        let (pacing, recorded) = pacing(5);
        let (answer, _) = run(&pacing, vec![limited(Some(3600))]).await;
        assert_eq!(
            answer,
            Err(FetchError::RateLimited {
                retry_after: Some(Duration::from_secs(3600))
            })
        );
        let daily = Limits {
            daily_left: Some(0),
            ..Limits::default()
        };
        let (answer, _) = run(&pacing, vec![(limited(Some(2)).0, daily)]).await;
        assert_eq!(answer, Err(budget_spent()));
        assert!(waits(&recorded).is_empty());
    }

    #[tokio::test]
    async fn other_errors_are_not_retried() {
        let (pacing, recorded) = pacing(5);
        let refused = FetchError::Unauthorized { status: 401 };
        let (answer, stats) = run(&pacing, vec![(Err(refused.clone()), Limits::default())]).await;
        assert_eq!(answer, Err(refused));
        assert_eq!(stats.requests, 1);
        assert!(waits(&recorded).is_empty());
    }
}

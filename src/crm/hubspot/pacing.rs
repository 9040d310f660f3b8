//! Client-side pacing of a reconcile's requests: HubSpot's search endpoints take only a few
//! requests per second per account, and after a 429 nothing is sent until its wait is over.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// Hands out send slots at least `interval` apart; [`Pacer::hold`] pushes the next one back.
#[derive(Debug)]
pub struct Pacer {
    interval: Duration,
    /// The earliest moment the next request may go; `None` before the first.
    next: Mutex<Option<Instant>>,
}

impl Pacer {
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            next: Mutex::new(None),
        }
    }

    /// Waits for the next slot and books the one after it.
    pub async fn ready(&self) {
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            let slot = next.map_or(now, |next| next.max(now));
            *next = Some(slot + self.interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }

    /// No slot before `wait` from now (a 429's Retry-After or rate-limit window).
    pub fn hold(&self, wait: Duration) {
        let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        let until = Instant::now() + wait;
        *next = Some(next.map_or(until, |next| next.max(until)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_go_no_closer_than_the_interval() {
        let pacer = Pacer::new(Duration::from_millis(250));
        let start = Instant::now();
        let mut sent = Vec::new();
        for _ in 0..5 {
            pacer.ready().await;
            sent.push(start.elapsed().as_millis());
        }
        assert_eq!(sent, [0, 250, 500, 750, 1000]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_caller_is_not_held_back_further() {
        let pacer = Pacer::new(Duration::from_millis(250));
        let start = Instant::now();
        pacer.ready().await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        pacer.ready().await;
        assert_eq!(start.elapsed(), Duration::from_secs(2));
        pacer.ready().await;
        assert_eq!(start.elapsed(), Duration::from_millis(2250));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hold_delays_the_next_request_by_the_wait_not_less() {
        let pacer = Pacer::new(Duration::from_millis(250));
        let start = Instant::now();
        pacer.ready().await;
        pacer.hold(Duration::from_secs(10));
        pacer.ready().await;
        assert_eq!(start.elapsed(), Duration::from_secs(10));
        // A shorter hold than the booked slot changes nothing.
        pacer.hold(Duration::from_millis(1));
        pacer.ready().await;
        assert_eq!(start.elapsed(), Duration::from_millis(10_250));
    }
}

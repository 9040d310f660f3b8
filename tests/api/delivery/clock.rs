//! The clock delivery tests move by hand: the worker reads it through the public `Clock` trait,
//! so a test decides when a retry or a rate-limit window is due.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use tallyfy_bridge::delivery::policy::Clock;

#[derive(Clone)]
pub struct ManualClock(Arc<AtomicI64>);

impl ManualClock {
    pub fn new(now_ms: i64) -> Self {
        Self(Arc::new(AtomicI64::new(now_ms)))
    }

    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }

    /// Moves forward to `now_ms` if behind it (rows stamped by the real clock become due).
    pub fn catch_up(&self, now_ms: i64) {
        self.0.fetch_max(now_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

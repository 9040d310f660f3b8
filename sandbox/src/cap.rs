//! Tallyfy-like hourly cap on guest creates: a fixed window opened by its first create,
//! with the seconds left in the window as the 429's Retry-After.

use std::time::{Duration, Instant};

use super::config::Faults;

#[derive(Default)]
pub(crate) struct HourlyCap {
    /// The current window's start and creates used; `None` until the first create.
    window: Option<(Instant, u32)>,
}

impl HourlyCap {
    /// `Some((cap, seconds until the window ends))` when no create is left in this window.
    pub fn exhausted(&mut self, faults: &Faults, now: Instant) -> Option<(u32, u64)> {
        let cap = faults.hourly_cap?;
        let length = Duration::from_secs(faults.cap_window_secs.max(1));
        let (started, used) = self.window.get_or_insert((now, 0));
        if now.saturating_duration_since(*started) >= length {
            (*started, *used) = (now, 0);
        }
        if *used < cap {
            return None;
        }
        let left = length.saturating_sub(now.saturating_duration_since(*started));
        // Round up: a client that waits exactly this long must find the window reopened.
        Some((cap, left.as_secs() + u64::from(left.subsec_nanos() > 0)))
    }

    /// Counts a create against the window `exhausted` just checked (no-op without a cap).
    pub fn consume(&mut self) {
        if let Some((_, used)) = self.window.as_mut() {
            *used += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_after_cap_then_reopens_with_the_next_window() {
        let faults = Faults {
            hourly_cap: Some(2),
            cap_window_secs: 60,
            ..Faults::default()
        };
        let mut cap = HourlyCap::default();
        let t0 = Instant::now();
        for _ in 0..2 {
            assert_eq!(cap.exhausted(&faults, t0), None);
            cap.consume();
        }
        let later = t0 + Duration::from_millis(10_500);
        assert_eq!(cap.exhausted(&faults, later), Some((2, 50)));
        assert_eq!(cap.exhausted(&faults, t0 + Duration::from_secs(60)), None);
    }

    #[test]
    fn no_cap_never_blocks() {
        let mut cap = HourlyCap::default();
        for _ in 0..1000 {
            assert_eq!(cap.exhausted(&Faults::default(), Instant::now()), None);
            cap.consume();
        }
    }
}

//! Tallyfy's hourly guest-invite cap as the bridge keeps to it: the limit, the budget left at
//! one instant, and the schedule a backlog drains on (when the next create may go, when the last).

/// At most `max_creates` creates per `window_ms` (0 = no limit), org-wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacingLimit {
    pub max_creates: u32,
    pub window_ms: i64,
}

/// The most a spend is counted beyond its window: the time a POST may take to reach Tallyfy
/// after its spend, so a window of Tallyfy's that opens with a later arrival is not overrun.
const SEND_MARGIN_MS: i64 = 1000;

impl PacingLimit {
    pub fn unlimited(&self) -> bool {
        self.max_creates == 0
    }

    /// How long a spend counts against the budget: the window plus a margin of a fiftieth of
    /// it, at most 1 s (72 ms of a 3.6 s window, 1 s of an hour).
    pub fn span_ms(&self) -> i64 {
        self.window_ms + (self.window_ms / 50).min(SEND_MARGIN_MS)
    }

    fn cap(&self) -> i64 {
        i64::from(self.max_creates)
    }
}

/// The budget as the store read it at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Spends still counting (within the span before the instant read).
    pub spent: i64,
    /// Tallyfy said its cap is reached: nothing is spent before this.
    pub exhausted_until: Option<i64>,
    /// When no unit is left: the spend whose expiry frees the next one (the `spent - cap`-th
    /// oldest, 0-based; see [`Budget::free_offset`]).
    pub next_freed_by: Option<i64>,
}

impl Budget {
    /// Units left at `now` (0 while Tallyfy's cap holds).
    pub fn left(&self, limit: PacingLimit, now: i64) -> i64 {
        if self.exhausted_until.is_some_and(|until| until > now) {
            return 0;
        }
        (limit.cap() - self.spent).max(0)
    }

    /// When the next create may be spent: `now` while a unit is left.
    pub fn next_create_at(&self, limit: PacingLimit, now: i64) -> i64 {
        slot_at(limit, self, now, 1, |_| self.next_freed_by).unwrap_or(now)
    }

    /// Which spend (0-based, oldest first) must expire before create slot `slot` (0-based,
    /// in the order creates will go) is free, `None` when the slot is free already. The spends
    /// beyond the cap (a cap lowered since they were made) expire first.
    pub fn free_offset(spent: i64, limit: PacingLimit, slot: i64) -> Option<i64> {
        let left = (limit.cap() - spent).max(0);
        (slot >= left).then(|| slot - left + (spent - limit.cap()).max(0))
    }
}

/// The budget as `/status` and `/metrics` show it: read at `now`, with `waiting` rows ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacingSnapshot {
    /// The limit the delivery worker last announced.
    pub limit: PacingLimit,
    pub budget: Budget,
    pub now: i64,
    /// Rows not yet delivered, failed or cancelled: each may need a create.
    pub waiting: i64,
    /// When the last of them may start its create (`None` without a limit or a backlog).
    pub drained_at: Option<i64>,
    /// When the next create may be sent (`now` while a unit is left; `None` without a limit).
    pub next_create_at: Option<i64>,
}

/// When the `waiting`-th create from now (1-based) may start, if every unit goes as soon as it
/// is free: slot `k` of the backlog takes the budget's slot `k mod cap` (free now, or when the
/// spend `spend_at` names expires, never before Tallyfy's cap ends) `k div cap` spans later.
/// `spend_at(offset)` is the spend time at that offset; `None` without a limit or a backlog.
pub fn slot_at(
    limit: PacingLimit,
    budget: &Budget,
    now: i64,
    waiting: i64,
    spend_at: impl FnOnce(i64) -> Option<i64>,
) -> Option<i64> {
    if limit.unlimited() || waiting <= 0 {
        return None;
    }
    let slot = waiting - 1;
    let within = slot % limit.cap();
    let first = match Budget::free_offset(budget.spent, limit, within) {
        None => now,
        // A spend already gone (read apart from the count) is free now.
        Some(offset) => spend_at(offset).map_or(now, |at| (at + limit.span_ms()).max(now)),
    };
    let first = first.max(budget.exhausted_until.unwrap_or(0));
    Some(first + (slot / limit.cap()) * limit.span_ms())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;
    const LIMIT: PacingLimit = PacingLimit {
        max_creates: 30,
        window_ms: HOUR,
    };

    fn budget(spent: i64) -> Budget {
        Budget {
            spent,
            exhausted_until: None,
            next_freed_by: None,
        }
    }

    #[test]
    fn a_spend_counts_for_its_window_and_a_small_margin() {
        assert_eq!(LIMIT.span_ms(), HOUR + 1000);
        let short = PacingLimit {
            max_creates: 5,
            window_ms: 10_000,
        };
        assert_eq!(short.span_ms(), 10_200);
    }

    #[test]
    fn a_full_budget_sends_30_now_and_30_each_span_after() {
        let now = 1_000_000;
        let at = |waiting| slot_at(LIMIT, &budget(0), now, waiting, |_| panic!("no spend read"));
        assert_eq!(at(1), Some(now));
        assert_eq!(at(30), Some(now));
        // 412 waiting: 30 now, then 30 per span: the last of the 14th batch 13 spans later.
        let last = slot_at(LIMIT, &budget(0), now, 412, |_| None).expect("paced");
        assert_eq!(last - now, 13 * LIMIT.span_ms());
    }

    #[test]
    fn a_spent_budget_waits_for_the_spend_that_frees_the_slot() {
        let now = 10 * HOUR;
        let spends: Vec<i64> = (0..30).map(|i| now - HOUR + 1000 * (i + 1)).collect();
        let b = budget(30);
        assert_eq!(b.left(LIMIT, now), 0);
        // The next create: when the oldest spend expires.
        let next = slot_at(LIMIT, &b, now, 1, |o| spends.get(o as usize).copied());
        assert_eq!(next, Some(spends[0] + LIMIT.span_ms()));
        // The 412th: slot 411 = 13 spans after the 22nd oldest spend expires.
        let last = slot_at(LIMIT, &b, now, 412, |o| {
            assert_eq!(o, 21);
            spends.get(o as usize).copied()
        });
        assert_eq!(last, Some(spends[21] + 14 * LIMIT.span_ms()));
    }

    #[test]
    fn tallyfys_cap_empties_the_budget_until_it_ends() {
        let now = 5 * HOUR;
        let b = Budget {
            exhausted_until: Some(now + 60_000),
            ..budget(3)
        };
        assert_eq!(b.left(LIMIT, now), 0);
        assert_eq!(b.left(LIMIT, now + 60_000), 27);
        assert_eq!(slot_at(LIMIT, &b, now, 1, |_| None), Some(now + 60_000));
    }

    #[test]
    fn spends_beyond_a_lowered_cap_expire_first() {
        let limit = PacingLimit {
            max_creates: 2,
            window_ms: HOUR,
        };
        assert_eq!(Budget::free_offset(5, limit, 0), Some(3));
        assert_eq!(Budget::free_offset(1, limit, 0), None);
        assert_eq!(Budget::free_offset(1, limit, 1), Some(0));
    }

    #[test]
    fn no_limit_has_no_schedule() {
        let unlimited = PacingLimit {
            max_creates: 0,
            window_ms: HOUR,
        };
        assert_eq!(slot_at(unlimited, &budget(0), 0, 100, |_| None), None);
        assert_eq!(slot_at(LIMIT, &budget(0), 0, 0, |_| None), None);
    }
}

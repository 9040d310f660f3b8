//! The sandbox's memory: guests keyed by normalised email, counters, fault dice and rate-limit
//! windows. One `std::sync::Mutex`, taken briefly and never held across an `.await`.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::cap::HourlyCap;
use super::config::{DuplicateMode, Faults, IdStyle, SandboxConfig};
use super::guest::{GuestRecord, SandboxGuest};
use super::oauth::Tokens;
use super::validate::{NewGuest, normalise_email};

/// Counters exposed by `/_sandbox/stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Guest API requests per route (`create_guest`, `find_guest`, `list_guests`).
    pub requests: BTreeMap<String, u64>,
    /// Creates that created a guest.
    pub creates: u64,
    /// Creates for an email that already was a guest (linked or rejected).
    pub duplicate_create_attempts: u64,
    /// Injected faults by kind: `latency`, `error_5xx`, `timeout`, `drop_after_create`,
    /// `burst_429`, `hourly_cap`.
    pub faults: BTreeMap<String, u64>,
    /// Every 429 sent (bursts and cap).
    pub rate_limited: u64,
    /// Every 401/403 sent.
    pub unauthorized: u64,
    /// Token endpoint requests per `grant_type` (`client_credentials`, `password`,
    /// `refresh_token`; anything else as `unsupported`), answered or refused.
    pub token_requests: BTreeMap<String, u64>,
    /// Access tokens the token endpoint issued.
    pub tokens_issued: u64,
    /// Token endpoint requests refused (wrong client, user or refresh token).
    pub token_refusals: u64,
}

/// What to do to a guest API request before looking at it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PreFault {
    None,
    Burst429 { retry_after_secs: u64 },
    ServerError(u16),
    Hang(Duration),
}

pub(crate) enum CreateOutcome {
    Created { guest: Value, drop_connection: bool },
    Linked(Value),
    Duplicate,
    CapReached { retry_after_secs: u64, cap: u32 },
}

pub(crate) struct State {
    pub org_id: String,
    pub token: String,
    pub faults: Faults,
    duplicate_mode: DuplicateMode,
    id_style: IdStyle,
    /// Seeded so that a fault sequence can be replayed.
    rng: fastrand::Rng,
    /// Keyed by normalised email: one guest per email, as in Tallyfy.
    guests: BTreeMap<String, GuestRecord>,
    next_seq: u64,
    pub stats: Stats,
    /// 429s still to send from `burst_429`, and their Retry-After.
    burst: (u32, u64),
    cap: HourlyCap,
    pub tokens: Tokens,
}

impl State {
    #[cfg(test)]
    pub(crate) fn for_tests(config: &SandboxConfig) -> Self {
        Self::new(config)
    }

    fn new(config: &SandboxConfig) -> Self {
        Self {
            org_id: config.org_id.clone(),
            token: config.token.clone(),
            faults: config.faults.clone(),
            duplicate_mode: config.duplicate_mode,
            id_style: config.id_style,
            rng: fastrand::Rng::with_seed(config.seed),
            guests: BTreeMap::new(),
            next_seq: 0,
            stats: Stats::default(),
            burst: (0, 0),
            cap: HourlyCap::default(),
            tokens: Tokens::new(config),
        }
    }

    /// The guest API takes the static token or an issued one not yet expired.
    pub fn accepts(&self, bearer: &str, now: Instant) -> bool {
        bearer == self.token || self.tokens.valid(bearer, now)
    }

    pub fn count_request(&mut self, route: &str) {
        *self.stats.requests.entry(route.to_owned()).or_default() += 1;
    }

    pub fn count_fault(&mut self, kind: &str) {
        *self.stats.faults.entry(kind.to_owned()).or_default() += 1;
    }

    pub fn set_burst(&mut self, count: u32, retry_after_secs: u64) {
        self.burst = (count, retry_after_secs);
    }

    /// Latency to add, then at most one fault. Bursts go first: they were asked for explicitly.
    pub fn roll_pre_faults(&mut self) -> (Duration, PreFault) {
        let latency = Duration::from_millis(self.faults.latency_ms);
        if !latency.is_zero() {
            self.count_fault("latency");
        }
        let fault = if self.burst.0 > 0 {
            self.burst.0 -= 1;
            self.count_fault("burst_429");
            self.stats.rate_limited += 1;
            PreFault::Burst429 {
                retry_after_secs: self.burst.1,
            }
        } else if self.roll(self.faults.error_rate) {
            self.count_fault("error_5xx");
            PreFault::ServerError(self.faults.error_status)
        } else if self.roll(self.faults.timeout_rate) {
            self.count_fault("timeout");
            PreFault::Hang(Duration::from_millis(self.faults.hang_ms))
        } else {
            PreFault::None
        };
        (latency, fault)
    }

    /// True with probability `rate`; 0 never draws, so a fault-free run keeps the dice still.
    fn roll(&mut self, rate: f64) -> bool {
        rate > 0.0 && self.rng.f64() < rate
    }

    pub fn create(&mut self, guest: NewGuest, now: Instant) -> CreateOutcome {
        if let Some((cap, retry_after_secs)) = self.cap.exhausted(&self.faults, now) {
            self.count_fault("hourly_cap");
            self.stats.rate_limited += 1;
            return CreateOutcome::CapReached {
                retry_after_secs,
                cap,
            };
        }
        if let Some(existing) = self.guests.get_mut(&guest.email) {
            existing.duplicate_attempts += 1;
            self.stats.duplicate_create_attempts += 1;
            return match self.duplicate_mode {
                DuplicateMode::Reject422 => CreateOutcome::Duplicate,
                DuplicateMode::Link => {
                    let json = existing.to_json(&self.org_id);
                    self.cap.consume();
                    CreateOutcome::Linked(json)
                }
            };
        }
        self.next_seq += 1;
        let (id, numeric) = match self.id_style {
            IdStyle::Numeric => ((4522 + self.next_seq).to_string(), true),
            IdStyle::Text => (format!("guest_code_{:04}", self.next_seq), false),
        };
        let record = GuestRecord::new(id, numeric, guest);
        let json = record.to_json(&self.org_id);
        self.guests.insert(record.guest.email.clone(), record);
        self.stats.creates += 1;
        self.cap.consume();
        let drop_connection = self.roll(self.faults.drop_after_create_rate);
        if drop_connection {
            self.count_fault("drop_after_create");
        }
        CreateOutcome::Created {
            guest: json,
            drop_connection,
        }
    }

    pub fn find(&self, email: &str) -> Option<Value> {
        let record = self.guests.get(&normalise_email(email))?;
        Some(record.to_json(&self.org_id))
    }

    /// Guests whose email contains `q`, one page of them, and the total that matched.
    pub fn list(&self, q: &str, page: usize, per_page: usize) -> (Vec<Value>, usize) {
        let q = normalise_email(q);
        let matching: Vec<&GuestRecord> = self
            .guests
            .values()
            .filter(|g| g.guest.email.contains(&q))
            .collect();
        let items = matching
            .iter()
            .skip(page.saturating_sub(1).saturating_mul(per_page))
            .take(per_page)
            .map(|g| g.to_json(&self.org_id))
            .collect();
        (items, matching.len())
    }

    pub fn guests(&self) -> Vec<SandboxGuest> {
        self.guests.values().map(GuestRecord::summary).collect()
    }

    pub fn create_count(&self, email: &str) -> u32 {
        self.guests
            .get(&normalise_email(email))
            .map_or(0, |g| g.creates)
    }
}

/// State plus the config it started from, so `reset` can restore it.
pub(crate) struct Shared {
    initial: SandboxConfig,
    state: Mutex<State>,
}

impl Shared {
    pub fn new(config: SandboxConfig) -> Self {
        Self {
            state: Mutex::new(State::new(&config)),
            initial: config,
        }
    }

    /// A panic elsewhere must not take the whole sandbox down: the state stays usable.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Back to the start config: no guests, zero counters, initial faults and token.
    pub fn reset(&self) {
        *self.lock() = State::new(&self.initial);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guest(email: &str) -> NewGuest {
        NewGuest {
            email: normalise_email(email),
            ..NewGuest::default()
        }
    }

    #[test]
    fn cap_blocks_then_reopens_with_the_window() {
        let mut config = SandboxConfig::default();
        config.faults.hourly_cap = Some(2);
        config.faults.cap_window_secs = 60;
        let mut state = State::new(&config);
        let t0 = Instant::now();
        assert!(matches!(
            state.create(guest("a@x.io"), t0),
            CreateOutcome::Created { .. }
        ));
        assert!(matches!(
            state.create(guest("a@x.io"), t0),
            CreateOutcome::Linked(_)
        ));
        let later = t0 + Duration::from_millis(10_500);
        match state.create(guest("b@x.io"), later) {
            CreateOutcome::CapReached {
                retry_after_secs,
                cap,
            } => {
                assert_eq!((retry_after_secs, cap), (50, 2));
            }
            _ => panic!("expected the cap"),
        }
        let next_window = t0 + Duration::from_secs(60);
        assert!(matches!(
            state.create(guest("b@x.io"), next_window),
            CreateOutcome::Created { .. }
        ));
        assert_eq!(state.stats.faults["hourly_cap"], 1);
        assert_eq!(state.create_count("A@X.IO "), 1);
        assert_eq!(state.guests()[0].duplicate_attempts, 1);
    }

    #[test]
    fn same_seed_gives_same_faults() {
        let mut config = SandboxConfig::default();
        config.faults.error_rate = 0.5;
        config.seed = 7;
        let run = |config: &SandboxConfig| {
            let mut state = State::new(config);
            (0..50)
                .map(|_| state.roll_pre_faults().1 == PreFault::ServerError(500))
                .collect::<Vec<_>>()
        };
        let first = run(&config);
        assert_eq!(first, run(&config));
        assert!(first.contains(&true) && first.contains(&false));
    }

    #[test]
    fn list_pages_through_matches() {
        let mut state = State::new(&SandboxConfig::default());
        for email in ["a1@x.io", "a2@x.io", "a3@x.io", "b@y.io"] {
            state.create(guest(email), Instant::now());
        }
        let (page, total) = state.list("@X.io", 2, 2);
        assert_eq!(total, 3);
        assert_eq!(page.len(), 1);
        assert_eq!(page[0]["email"], "a3@x.io");
    }
}

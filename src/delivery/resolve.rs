//! The retry policy applied to an attempt that established no guest: a 429 or refused
//! credentials wait without spending the attempt, other failures back off or fail for good.

use std::time::Duration;

use crate::crm::FetchError;
use crate::domain::outcome::{Outcome, Refusal, Stage};
use crate::outbox::Claimed;
use crate::tallyfy::CallError;

use super::{Worker, redact};

/// Why the calls established no guest, before the retry policy decides what follows.
pub(super) enum Failure {
    /// Tallyfy (or the local database before it) failed the call.
    Call(CallError),
    /// Tallyfy answered 422 and the guest is not there: a real data problem.
    Rejected(String),
    /// The stored payload cannot make a guest: retrying will not change it. (A fetched CRM
    /// contact without a usable email is [`Outcome::Refused`] instead.)
    Unusable(String),
    /// No unit of the create budget was left for the POST: none was sent.
    Paced { until: i64 },
    /// The CRM record the row names could not be read.
    Fetch {
        crm: &'static str,
        error: FetchError,
    },
}

/// A local database error before any call: retried like a failure that never reached Tallyfy.
pub(super) fn storage_error(error: anyhow::Error) -> Failure {
    Failure::Call(CallError::Transient {
        may_have_reached: false,
        status: None,
        detail: format!("local database error: {error:#}"),
    })
}

/// Waits after a CRM read answered 404, by attempt: about 3.5 minutes in all before the row
/// fails.
const NOT_FOUND_WAITS: [Duration; 3] = [
    Duration::from_secs(30),
    Duration::from_secs(60),
    Duration::from_secs(120),
];

impl Worker {
    pub(super) fn resolve(&self, row: &Claimed, failure: Failure, now: i64) -> Outcome {
        let error = match failure {
            Failure::Rejected(message) => {
                return Outcome::Failed {
                    reason: redact(&format!("Tallyfy refused the guest (HTTP 422): {message}")),
                    status: Some(422),
                    stage: Stage::Tallyfy,
                };
            }
            Failure::Unusable(reason) => {
                return Outcome::Failed {
                    reason,
                    status: None,
                    stage: Stage::Tallyfy,
                };
            }
            Failure::Fetch { crm, error } => return self.fetch_failed(row, crm, error, now),
            Failure::Paced { until } => {
                return Outcome::Paced {
                    until,
                    reason: self.paced_reason(until),
                    by_tallyfy: false,
                };
            }
            Failure::Call(error) => error,
        };
        let reason = redact(&error.to_string());
        match error {
            // Tallyfy's own hourly cap: the budget is empty until its window ends (by default
            // a whole window from now); look-ups stay allowed.
            CallError::GuestCapReached { retry_after } if !self.pacing.unlimited() => {
                let window = Duration::from_millis(self.pacing.window_ms as u64);
                let wait = retry_after.unwrap_or(window).clamp(
                    Duration::from_secs(1),
                    window.max(Duration::from_secs(3600)),
                );
                Outcome::Paced {
                    until: now + wait.as_millis() as i64,
                    reason,
                    by_tallyfy: true,
                }
            }
            CallError::RateLimited { retry_after } | CallError::GuestCapReached { retry_after } => {
                Outcome::RateLimited {
                    until: now + self.policy.rate_limit_wait(retry_after).as_millis() as i64,
                    reason,
                }
            }
            CallError::Unauthorized { status } => Outcome::Paused {
                reason,
                status: Some(status),
            },
            CallError::Credentials { status, .. } => Outcome::Paused { reason, status },
            CallError::Permanent { .. } | CallError::Unprocessable { .. } => Outcome::Failed {
                reason,
                status: error.status(),
                stage: Stage::Tallyfy,
            },
            CallError::Transient { status, .. } => {
                self.backoff(row, reason, status, Stage::Tallyfy, now)
            }
        }
    }

    /// After a failure worth retrying: try again after backoff, or fail once out of attempts
    /// or age.
    fn backoff(
        &self,
        row: &Claimed,
        reason: String,
        status: Option<u16>,
        stage: Stage,
        now: i64,
    ) -> Outcome {
        // An operator's retry starts a fresh budget: attempts and age count from it.
        let attempts = row.budget_attempts();
        let age = Duration::from_millis((now - row.budget_since()).max(0) as u64);
        if self.policy.exhausted(attempts, age) {
            Outcome::Failed {
                reason: format!("gave up after {attempts} attempts: {reason}"),
                status,
                stage,
            }
        } else {
            Outcome::Retry {
                at: now + self.policy.delay_after(attempts).as_millis() as i64,
                reason,
                status,
                stage,
                spent: true,
            }
        }
    }

    /// A CRM read that gave nothing gets Tallyfy's treatment: 429s and refused tokens
    /// give the attempt back and wait, other failures back off; a missing contact fails.
    fn fetch_failed(
        &self,
        row: &Claimed,
        crm: &'static str,
        error: FetchError,
        now: i64,
    ) -> Outcome {
        let status = error.status();
        let reason = redact(&format!("{crm}: {error}"));
        let wait = |at: i64, reason: String, spent: bool| Outcome::Retry {
            at,
            reason,
            status,
            stage: Stage::Fetch,
            spent,
        };
        match error {
            FetchError::RateLimited { retry_after } => {
                let until = now + self.policy.rate_limit_wait(retry_after).as_millis() as i64;
                let mut holds = self.lock_holds();
                let hold = holds.entry(crm).or_default();
                *hold = (*hold).max(until);
                wait(until, reason, false)
            }
            FetchError::Unauthorized { .. } | FetchError::NotConfigured => {
                tracing::warn!(%reason, "CRM records cannot be read; their events wait");
                wait(now + self.paused_probe.as_millis() as i64, reason, false)
            }
            FetchError::Transient { .. } => self.backoff(row, reason, status, Stage::Fetch, now),
            // HubSpot's API can lag behind its own webhook: a contact it just announced may not
            // be readable yet. Only a contact still missing minutes later is gone.
            FetchError::NotFound => {
                match NOT_FOUND_WAITS.get(row.budget_attempts().max(1) as usize - 1) {
                    Some(delay) => wait(now + delay.as_millis() as i64, reason, true),
                    None => Outcome::Failed {
                        reason: format!(
                            "{reason}, still after {} reads over {} s",
                            row.budget_attempts(),
                            NOT_FOUND_WAITS.iter().map(Duration::as_secs).sum::<u64>()
                        ),
                        status,
                        stage: Stage::Fetch,
                    },
                }
            }
            FetchError::Permanent { .. } => Outcome::Failed {
                reason,
                status,
                stage: Stage::Fetch,
            },
        }
    }

    /// Until when `crm` holds us off after a 429 (ms), 0 when it does not.
    pub(super) fn crm_hold(&self, crm: &'static str) -> i64 {
        self.lock_holds().get(crm).copied().unwrap_or(0)
    }

    fn lock_holds(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<&'static str, i64>> {
        // Plain numbers: a panic elsewhere cannot leave the map inconsistent.
        self.crm_holds
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What an operator must hear of an attempt that did not deliver: a retry at WARN, a final
/// failure at ERROR, each with the row, attempt, status and a short redacted reason; never an
/// email or a payload. Waits that cost no attempt (429, refused tokens) are logged where learned.
pub(super) fn log_ending(outbox_id: i64, attempt: i64, outcome: &Outcome) {
    let status = outcome.http_status();
    match outcome {
        Outcome::Retry {
            spent: true,
            reason,
            at,
            ..
        } => {
            let reason = short(reason);
            let retry_at = crate::time::rfc3339(*at).unwrap_or_default();
            tracing::warn!(outbox_id, attempt, status, %reason, %retry_at, "Delivery attempt failed; will retry");
        }
        Outcome::Failed { reason, .. } => {
            let reason = short(reason);
            tracing::error!(outbox_id, attempt, status, %reason, "Delivery failed for good");
        }
        Outcome::Refused { refusal, .. } => {
            let Refusal { code, field, .. } = refusal;
            tracing::warn!(
                outbox_id,
                attempt,
                code,
                field,
                "The CRM record has no usable email: delivery failed, refusal kept"
            );
        }
        _ => {}
    }
}

/// A reason fit for one log line: redacted before it is cut (so no half address survives), then
/// Tallyfy's excerpt: one line, at most 200 characters.
fn short(reason: &str) -> String {
    crate::upstream::excerpt(redact(reason).as_bytes())
}

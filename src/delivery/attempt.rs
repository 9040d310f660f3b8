//! One delivery attempt in stages: prepare (ledger, decide whether to look up first) → call
//! (look-up, create, 422 look-up) → a [`Resolution`] for the row plus what it means for the worker.

use std::time::Instant;

use crate::outbox::delivery::{AttemptLog, AttemptResult, Claimed, Resolution};
use crate::tallyfy::{CallError, GuestRequest};

use super::{Outcome, Worker, redact};

/// What the calls established, before retry policy is applied.
enum Verdict {
    Known {
        guest_id: String,
        learned_by: &'static str,
    },
    /// Tallyfy answered 422 and the guest is not there: a real data problem.
    Rejected {
        message: String,
    },
    Error(CallError),
    /// The stored payload cannot be read: retrying will not change it.
    Corrupt(String),
}

impl Worker {
    /// Runs one claimed row to its recorded result.
    #[tracing::instrument(skip_all, fields(outbox_id = row.id, attempt = row.attempts))]
    pub(super) async fn deliver(&self, row: Claimed) -> Outcome {
        let started_at = self.clock.now_ms();
        let timer = Instant::now();
        // Give up before the lease ends, so no second worker can start while we still talk.
        let verdict = match tokio::time::timeout(self.call_budget, self.call(&row)).await {
            Ok(verdict) => verdict,
            Err(_) => Verdict::Error(CallError::Transient {
                may_have_reached: true,
                status: None,
                detail: "the attempt outlived its lease budget".into(),
            }),
        };
        let now = self.clock.now_ms();
        let (resolution, outcome) = self.resolve(&row, verdict, now);
        let log = AttemptLog {
            started_at,
            duration_ms: timer.elapsed().as_millis() as i64,
            http_status: outcome.http_status(),
            outcome: outcome.class(),
        };
        let result = AttemptResult {
            row,
            resolution,
            log,
            now,
        };
        match self.recorder.record(&self.pool, &self.org_id, result).await {
            Ok(true) => outcome,
            Ok(false) => {
                tracing::warn!(
                    "Lease lost before the result was recorded; another attempt owns the row"
                );
                Outcome::LeaseLost
            }
            Err(error) => {
                // The lease will expire and the row be claimed again; its next attempt looks
                // the guest up first, so a create that happened is found, not repeated.
                tracing::error!(error = %format!("{error:#}"), "Failed to record a delivery result");
                Outcome::LeaseLost
            }
        }
    }

    /// The Tallyfy side of the attempt. Never creates when an earlier attempt may have.
    async fn call(&self, row: &Claimed) -> Verdict {
        match crate::outbox::delivery::ledger_lookup(&self.pool, &self.org_id, &row.email).await {
            Ok(Some(guest_id)) => {
                return Verdict::Known {
                    guest_id,
                    learned_by: "ledger",
                };
            }
            Ok(None) => {}
            Err(error) => return Verdict::Error(storage_error(error)),
        }
        let mut guest: GuestRequest = match serde_json::from_str(&row.payload) {
            Ok(guest) => guest,
            Err(error) => {
                return Verdict::Corrupt(format!("stored payload is unreadable: {error}"));
            }
        };
        // Tallyfy sees the normalised email, the same one we look it up by.
        guest.email = row.email.clone();

        let look_first = row.attempts > 1
            || match crate::outbox::delivery::email_attempted_before(&self.pool, &row.email, row.id)
                .await
            {
                Ok(seen) => seen,
                Err(error) => return Verdict::Error(storage_error(error)),
            };
        if look_first {
            match self.client.find_guest(&guest.email).await {
                Ok(Some(id)) => {
                    return Verdict::Known {
                        guest_id: id.into_string(),
                        learned_by: "found",
                    };
                }
                Ok(None) => {}
                Err(error) => return Verdict::Error(error),
            }
        }
        match self.client.create_guest(&guest).await {
            Ok(id) => Verdict::Known {
                guest_id: id.into_string(),
                learned_by: "created",
            },
            // Older docs: 422 for an existing guest. Only a miss on look-up makes it final.
            Err(CallError::Unprocessable { message }) => {
                match self.client.find_guest(&guest.email).await {
                    Ok(Some(id)) => Verdict::Known {
                        guest_id: id.into_string(),
                        learned_by: "existing",
                    },
                    Ok(None) => Verdict::Rejected { message },
                    Err(error) => Verdict::Error(error),
                }
            }
            Err(error) => Verdict::Error(error),
        }
    }

    /// Applies the retry policy: what happens to the row, and what the worker learns.
    fn resolve(&self, row: &Claimed, verdict: Verdict, now: i64) -> (Resolution, Outcome) {
        let error = match verdict {
            Verdict::Known {
                guest_id,
                learned_by,
            } => {
                return (
                    Resolution::Delivered {
                        guest_id: guest_id.clone(),
                        learned_by,
                    },
                    Outcome::Delivered {
                        guest_id,
                        learned_by,
                    },
                );
            }
            Verdict::Rejected { message } => {
                let reason = redact(&format!("Tallyfy refused the guest (HTTP 422): {message}"));
                return (
                    Resolution::Failed {
                        error: reason.clone(),
                    },
                    Outcome::Failed {
                        reason,
                        status: Some(422),
                    },
                );
            }
            Verdict::Corrupt(reason) => {
                return (
                    Resolution::Failed {
                        error: reason.clone(),
                    },
                    Outcome::Failed {
                        reason,
                        status: None,
                    },
                );
            }
            Verdict::Error(error) => error,
        };
        let reason = redact(&error.to_string());
        match &error {
            &CallError::RateLimited { retry_after } => {
                let until = now + self.policy.rate_limit_wait(retry_after).as_millis() as i64;
                (
                    Resolution::Retry {
                        at: until,
                        refund: true,
                        error: reason,
                    },
                    Outcome::RateLimited { until },
                )
            }
            &CallError::Unauthorized { status } => (
                // Due again at once: the worker's pause decides when anything is tried.
                Resolution::Retry {
                    at: now,
                    refund: true,
                    error: reason.clone(),
                },
                Outcome::Paused { reason, status },
            ),
            CallError::Permanent { .. } | CallError::Unprocessable { .. } => {
                let status = error.status();
                (
                    Resolution::Failed {
                        error: reason.clone(),
                    },
                    Outcome::Failed { reason, status },
                )
            }
            &CallError::Transient { status, .. } => {
                let age = std::time::Duration::from_millis((now - row.received_at).max(0) as u64);
                if self.policy.exhausted(row.attempts, age) {
                    let reason = format!("gave up after {} attempts: {reason}", row.attempts);
                    (
                        Resolution::Failed {
                            error: reason.clone(),
                        },
                        Outcome::Failed { reason, status },
                    )
                } else {
                    let at = now + self.policy.delay_after(row.attempts).as_millis() as i64;
                    (
                        Resolution::Retry {
                            at,
                            refund: false,
                            error: reason.clone(),
                        },
                        Outcome::Retry { at, reason, status },
                    )
                }
            }
        }
    }
}

/// A local database error before any call: retried like a failure that never reached Tallyfy.
fn storage_error(error: anyhow::Error) -> CallError {
    CallError::Transient {
        may_have_reached: false,
        status: None,
        detail: format!("local database error: {error:#}"),
    }
}

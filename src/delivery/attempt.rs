//! One delivery attempt in stages: prepare (fetch a CRM contact that is only a reference, ledger,
//! decide whether to look up first) → call (look-up, create, 422 look-up) → a [`Resolution`] for
//! the row plus what it means for the worker.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::hubspot::{ContactRef, FetchError, Pending};
use crate::outbox::delivery::{AttemptLog, AttemptResult, Claimed, Resolution};
use crate::tallyfy::{CallError, GuestRequest};

use super::{Outcome, Worker, redact};

/// An outbox payload: the guest to create, or a CRM contact to fetch first.
#[derive(Deserialize)]
#[serde(untagged)]
enum Stored {
    Pending(Pending),
    Guest(Box<GuestRequest>),
}

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
    /// The stored payload, or the contact fetched for it, cannot make a guest: retrying will
    /// not change it.
    Unusable(String),
    /// The CRM contact was fetched: its email and the guest to create.
    Fetched {
        email: String,
        payload: String,
    },
    FetchFailed(FetchError),
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
        let mut guest = match serde_json::from_str(&row.payload) {
            Ok(Stored::Guest(guest)) => *guest,
            Ok(Stored::Pending(pending)) => return self.fetch(&pending.hubspot_contact).await,
            Err(error) => {
                return Verdict::Unusable(format!("stored payload is unreadable: {error}"));
            }
        };
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

    /// HubSpot's webhook named only the contact: fetch its fields (no Tallyfy call in this
    /// attempt; the row is delivered as an ordinary one for the email it resolves to).
    async fn fetch(&self, contact: &ContactRef) -> Verdict {
        let Some(hubspot) = &self.hubspot else {
            return Verdict::FetchFailed(FetchError::NotConfigured);
        };
        let now = self.clock.now_ms();
        let hold = self.hubspot_hold_until.load(Ordering::Relaxed);
        if hold > now {
            // Another fetch was just rate limited: wait with it instead of calling.
            return Verdict::FetchFailed(FetchError::RateLimited {
                retry_after: Some(Duration::from_millis((hold - now) as u64)),
            });
        }
        let draft = match hubspot.fetch_contact(&contact.contact_id).await {
            Ok(draft) => draft,
            Err(error) => return Verdict::FetchFailed(error),
        };
        let drafted = match draft.into_guest() {
            Ok(drafted) => drafted,
            Err(problem) => {
                return Verdict::Unusable(format!(
                    "HubSpot contact {}: {}",
                    contact.contact_id, problem.message
                ));
            }
        };
        if !drafted.dropped.is_empty() {
            let left_out: Vec<&str> = drafted.dropped.iter().map(|p| p.field).collect();
            tracing::info!(?left_out, "Fields over Tallyfy's limits left out");
        }
        match serde_json::to_string(&drafted.guest) {
            Ok(payload) => Verdict::Fetched {
                email: drafted.normalised_email,
                payload,
            },
            Err(error) => Verdict::Unusable(format!("fetched contact is unusable: {error}")),
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
            Verdict::Fetched { email, payload } => {
                return (
                    Resolution::Resolved { email, payload },
                    Outcome::Fetched {
                        error: None,
                        status: Some(200),
                    },
                );
            }
            Verdict::FetchFailed(error) => return self.fetch_failed(row, error, now),
            Verdict::Unusable(reason) => {
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
                let resolution = self.backoff(row, reason, now);
                let outcome = match &resolution {
                    Resolution::Retry { at, error, .. } => Outcome::Retry {
                        at: *at,
                        reason: error.clone(),
                        status,
                    },
                    other => Outcome::Failed {
                        reason: other.error().unwrap_or_default().to_owned(),
                        status,
                    },
                };
                (resolution, outcome)
            }
        }
    }

    /// After a failure worth retrying: try again after backoff, or fail once out of attempts
    /// or age.
    fn backoff(&self, row: &Claimed, reason: String, now: i64) -> Resolution {
        let age = Duration::from_millis((now - row.received_at).max(0) as u64);
        if self.policy.exhausted(row.attempts, age) {
            Resolution::Failed {
                error: format!("gave up after {} attempts: {reason}", row.attempts),
            }
        } else {
            Resolution::Retry {
                at: now + self.policy.delay_after(row.attempts).as_millis() as i64,
                refund: false,
                error: reason,
            }
        }
    }

    /// A HubSpot fetch that gave no contact gets Tallyfy's treatment: 429s and refused tokens
    /// give the attempt back and wait, other failures back off; a missing contact fails.
    fn fetch_failed(&self, row: &Claimed, error: FetchError, now: i64) -> (Resolution, Outcome) {
        let status = error.status();
        let reason = redact(&error.to_string());
        let resolution = match error {
            FetchError::RateLimited { retry_after } => {
                let until = now + self.policy.rate_limit_wait(retry_after).as_millis() as i64;
                self.hubspot_hold_until.fetch_max(until, Ordering::Relaxed);
                Resolution::Retry {
                    at: until,
                    refund: true,
                    error: reason,
                }
            }
            FetchError::Unauthorized { .. } | FetchError::NotConfigured => {
                tracing::warn!(%reason, "HubSpot contacts cannot be fetched; they wait");
                Resolution::Retry {
                    at: now + self.paused_probe.as_millis() as i64,
                    refund: true,
                    error: reason,
                }
            }
            FetchError::Transient { .. } => self.backoff(row, reason, now),
            FetchError::NotFound | FetchError::Permanent { .. } => {
                Resolution::Failed { error: reason }
            }
        };
        let outcome = Outcome::Fetched {
            error: resolution.error().map(str::to_owned),
            status,
        };
        (resolution, outcome)
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

//! One delivery attempt in stages: prepare (fetch a CRM contact that is only a reference, ledger,
//! decide whether to look up first) → call (look-up, create, 422 look-up) → a [`Resolution`] for
//! the row plus what it means for the worker.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::crm::{ContactRef, FetchError, OrgRef, Pending};
use crate::domain::{Guest, NAME_MAX, has_control};
use crate::outbox::delivery::{AttemptLog, AttemptResult, Claimed, GateChange, Resolution};
use crate::tallyfy::CallError;

use super::{Outcome, Worker, redact};

/// An outbox payload: the guest to create, or a CRM contact to fetch first.
#[derive(Deserialize)]
#[serde(untagged)]
enum Stored {
    Pending(Pending),
    Guest(Box<Guest>),
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
    /// The CRM record was read: the row's email and the guest to create.
    Fetched {
        email: String,
        payload: String,
    },
    FetchFailed {
        crm: &'static str,
        error: FetchError,
    },
}

impl Verdict {
    /// A completed row: its email and the guest to create.
    fn fetched(email: String, guest: &Guest) -> Self {
        match serde_json::to_string(guest) {
            Ok(payload) => Self::Fetched { email, payload },
            Err(error) => Self::Unusable(format!("the fetched guest is unusable: {error}")),
        }
    }
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
        let gate = outcome.gate_change();
        if let Some(GateChange::Pause(reason)) = &gate {
            // Before the row is written back due, so no claim of this worker sees it while
            // delivery still looks open (other workers see the pause in the row's own commit).
            if !self.paused.swap(true, Ordering::Relaxed) {
                tracing::warn!(%reason, "Tallyfy refused the credentials: delivery paused");
            }
        }
        let (id, attempt, status) = (row.id, row.attempts, outcome.http_status());
        let log = AttemptLog {
            started_at,
            duration_ms: timer.elapsed().as_millis() as i64,
            http_status: outcome.http_status(),
            outcome: outcome.class(),
        };
        let ending = Ending::of(&resolution);
        let result = AttemptResult {
            row,
            resolution,
            log,
            now,
            gate,
        };
        match self.recorder.record(&self.pool, &self.org_id, result).await {
            Ok(true) => {
                ending.log(id, attempt, status);
                outcome
            }
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
            Ok(Stored::Pending(pending)) => return self.complete(row, pending).await,
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

    /// Completes an event its CRM's webhook only named (no Tallyfy call in this attempt; the row
    /// is then delivered as an ordinary one), unless that CRM holds us off after a 429.
    async fn complete(&self, row: &Claimed, pending: Pending) -> Verdict {
        let crm = pending.crm();
        let hold = self.crm_hold(crm) - self.clock.now_ms();
        if hold > 0 {
            let retry_after = Some(Duration::from_millis(hold as u64));
            return Verdict::FetchFailed {
                crm,
                error: FetchError::RateLimited { retry_after },
            };
        }
        let read = match pending {
            Pending::HubSpotContact { hubspot_contact } => {
                self.fetch_contact(&hubspot_contact).await
            }
            Pending::PipedriveOrg {
                pipedrive_org,
                guest,
            } => self
                .fetch_company(&pipedrive_org, *guest)
                .await
                .map(|guest| Verdict::fetched(row.email.clone(), &guest)),
        };
        read.unwrap_or_else(|error| Verdict::FetchFailed { crm, error })
    }

    /// The HubSpot contact as the row's guest, under the email it turns out to have.
    async fn fetch_contact(&self, contact: &ContactRef) -> Result<Verdict, FetchError> {
        let hubspot = self
            .crms
            .hubspot
            .as_ref()
            .ok_or(FetchError::NotConfigured)?;
        let draft = hubspot.fetch_contact(&contact.contact_id).await?;
        Ok(match draft.into_guest() {
            Ok(drafted) => {
                if !drafted.dropped.is_empty() {
                    let left_out: Vec<&str> = drafted.dropped.iter().map(|p| p.field).collect();
                    tracing::info!(?left_out, "Fields over Tallyfy's limits left out");
                }
                Verdict::fetched(drafted.normalised_email.into(), &drafted.guest)
            }
            Err(problem) => Verdict::Unusable(format!(
                "HubSpot contact {}: {}",
                contact.contact_id, problem.message
            )),
        })
    }

    /// The guest with its Pipedrive organisation's name as company. Without a token (any more),
    /// a deleted organisation or a name over Tallyfy's limit (or with a control character), the
    /// guest goes without one.
    async fn fetch_company(&self, org: &OrgRef, mut guest: Guest) -> Result<Guest, FetchError> {
        match &self.crms.pipedrive {
            Some(pipedrive) => {
                guest.company_name = pipedrive
                    .org_name(org)
                    .await?
                    .filter(|name| name.chars().count() <= NAME_MAX && !has_control(name));
            }
            None => {
                tracing::warn!("No sources.pipedrive.api_token: the guest goes without company")
            }
        }
        Ok(guest)
    }

    fn crm_hold(&self, crm: &'static str) -> i64 {
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
                        status: None,
                    },
                );
            }
            Verdict::FetchFailed { crm, error } => return self.fetch_failed(row, crm, error, now),
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

    /// A CRM read that gave nothing gets Tallyfy's treatment: 429s and refused tokens
    /// give the attempt back and wait, other failures back off; a missing contact fails.
    fn fetch_failed(
        &self,
        row: &Claimed,
        crm: &'static str,
        error: FetchError,
        now: i64,
    ) -> (Resolution, Outcome) {
        let status = error.status();
        let reason = redact(&format!("{crm}: {error}"));
        let resolution = match error {
            FetchError::RateLimited { retry_after } => {
                let until = now + self.policy.rate_limit_wait(retry_after).as_millis() as i64;
                let mut holds = self.lock_holds();
                let hold = holds.entry(crm).or_default();
                *hold = (*hold).max(until);
                Resolution::Retry {
                    at: until,
                    refund: true,
                    error: reason,
                }
            }
            FetchError::Unauthorized { .. } | FetchError::NotConfigured => {
                tracing::warn!(%reason, "CRM records cannot be read; their events wait");
                Resolution::Retry {
                    at: now + self.paused_probe.as_millis() as i64,
                    refund: true,
                    error: reason,
                }
            }
            FetchError::Transient { .. } => self.backoff(row, reason, now),
            // HubSpot's API can lag behind its own webhook: a contact it just announced may not
            // be readable yet. Only a contact still missing minutes later is gone.
            FetchError::NotFound => match NOT_FOUND_WAITS.get(row.attempts.max(1) as usize - 1) {
                Some(wait) => Resolution::Retry {
                    at: now + wait.as_millis() as i64,
                    refund: false,
                    error: reason,
                },
                None => Resolution::Failed {
                    error: format!(
                        "{reason}, still after {} reads over {} s",
                        row.attempts,
                        NOT_FOUND_WAITS.iter().map(Duration::as_secs).sum::<u64>()
                    ),
                },
            },
            FetchError::Permanent { .. } => Resolution::Failed { error: reason },
        };
        let outcome = Outcome::Fetched {
            error: resolution.error().map(str::to_owned),
            status,
        };
        (resolution, outcome)
    }
}

/// Waits after a CRM read answered 404, by attempt: about 3.5 minutes in all before the row
/// fails.
const NOT_FOUND_WAITS: [Duration; 3] = [
    Duration::from_secs(30),
    Duration::from_secs(60),
    Duration::from_secs(120),
];

/// What an operator must hear of an attempt that did not deliver: a retry at WARN, a final
/// failure at ERROR, each with the row, attempt, status and a short redacted reason; never an
/// email or a payload. Waits that cost no attempt (429, refused tokens) are logged where learned.
enum Ending {
    Retry { reason: String, at: i64 },
    Failed { reason: String },
    Quiet,
}

impl Ending {
    fn of(resolution: &Resolution) -> Self {
        match resolution {
            Resolution::Retry {
                refund: false,
                error,
                at,
            } => Self::Retry {
                reason: short(error),
                at: *at,
            },
            Resolution::Failed { error } => Self::Failed {
                reason: short(error),
            },
            _ => Self::Quiet,
        }
    }

    fn log(&self, outbox_id: i64, attempt: i64, status: Option<u16>) {
        match self {
            Self::Retry { reason, at } => {
                let retry_at = crate::time::rfc3339(*at).unwrap_or_default();
                tracing::warn!(outbox_id, attempt, status, %reason, %retry_at, "Delivery attempt failed; will retry");
            }
            Self::Failed { reason } => {
                tracing::error!(outbox_id, attempt, status, %reason, "Delivery failed for good");
            }
            Self::Quiet => {}
        }
    }
}

/// A reason fit for one log line: redacted before it is cut (so no half address survives), then
/// Tallyfy's excerpt: one line, at most 200 characters.
fn short(reason: &str) -> String {
    crate::upstream::excerpt(redact(reason).as_bytes())
}

/// A local database error before any call: retried like a failure that never reached Tallyfy.
fn storage_error(error: anyhow::Error) -> CallError {
    CallError::Transient {
        may_have_reached: false,
        status: None,
        detail: format!("local database error: {error:#}"),
    }
}

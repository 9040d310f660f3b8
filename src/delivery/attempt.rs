//! One delivery attempt in stages: prepare (fetch a CRM contact that is only a reference, ledger,
//! decide whether to look up first) → call (look-up, create, 422 look-up) → an [`Outcome`],
//! recorded with the row.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::crm::{FetchError, OrgRef};
use crate::domain::event::StoredEvent;
use crate::domain::outcome::{LearnedBy, LeaseLost, Outcome, Refusal};
use crate::domain::{Guest, NAME_MAX, has_control};
use crate::outbox::{AttemptLog, AttemptResult, Claimed};
use crate::tallyfy::CallError;

use super::Worker;
use super::resolve::Failure;

/// A completed row: its email and the guest to create.
fn fetched(email: String, guest: Guest) -> Outcome {
    Outcome::Fetched {
        email,
        payload: StoredEvent::Guest { guest }.encode(),
    }
}

fn delivered(guest_id: String, learned_by: LearnedBy) -> Outcome {
    Outcome::Delivered {
        guest_id,
        learned_by,
    }
}

impl Worker {
    /// Runs one claimed row to its recorded outcome.
    #[tracing::instrument(skip_all, fields(outbox_id = row.id, attempt = row.attempts))]
    pub(super) async fn deliver(&self, row: Claimed) -> Result<Outcome, LeaseLost> {
        // Counted by the claim; released however the attempt ends.
        let _unspent = super::pacing::Unspent::one(&self.unspent);
        let started_at = self.clock.now_ms();
        let timer = Instant::now();
        // Give up before the lease ends, so no second worker can start while we still talk.
        let called = match tokio::time::timeout(self.call_budget, self.call(&row)).await {
            Ok(called) => called,
            Err(_) => Err(Failure::Call(CallError::Transient {
                may_have_reached: true,
                status: None,
                detail: "the attempt outlived its lease budget".into(),
            })),
        };
        let now = self.clock.now_ms();
        let outcome = called.unwrap_or_else(|failure| self.resolve(&row, failure, now));
        if let Outcome::Paused { reason, .. } = &outcome {
            // Before the row is written back due, so no claim of this worker sees it while
            // delivery still looks open (other workers see the pause in the row's own commit).
            if !self.paused.swap(true, Ordering::Relaxed) {
                tracing::warn!(%reason, "Tallyfy refused the credentials: delivery paused");
            }
        }
        let (id, attempt) = (row.id, row.attempts);
        let log = AttemptLog {
            started_at,
            duration_ms: timer.elapsed().as_millis() as i64,
        };
        let result = AttemptResult {
            row,
            outcome: outcome.clone(),
            log,
            now,
        };
        match self
            .recorder
            .record(&*self.store, &self.org_id, result)
            .await
        {
            Ok(true) => {
                super::resolve::log_ending(id, attempt, &outcome);
                Ok(outcome)
            }
            Ok(false) => {
                tracing::warn!(
                    "Lease lost before the result was recorded; another attempt owns the row"
                );
                Err(LeaseLost)
            }
            Err(error) => {
                // The lease will expire and the row be claimed again; its next attempt looks
                // the guest up first, so a create that happened is found, not repeated.
                tracing::error!(error = %format!("{error:#}"), "Failed to record a delivery result");
                Err(LeaseLost)
            }
        }
    }

    /// The Tallyfy side of the attempt. Never creates when an earlier attempt may have.
    async fn call(&self, row: &Claimed) -> Result<Outcome, Failure> {
        let mut guest = match StoredEvent::decode(&row.payload).map_err(Failure::Unusable)? {
            StoredEvent::Guest { guest } => guest,
            pending => return self.complete(row, pending).await,
        };
        let Some(email) = &row.email else {
            return Err(Failure::Unusable("the row has a guest but no email".into()));
        };
        // Read with the claim (see `Claimed`).
        if let Some(guest_id) = &row.known_guest_id {
            return Ok(delivered(guest_id.clone(), LearnedBy::Ledger));
        }
        // Tallyfy sees the normalised email, the same one we look it up by.
        guest.email = email.clone();

        let look_first = row.attempts > 1 || row.attempted_before;
        if look_first
            && let Some(id) = self
                .client
                .find_guest(&guest.email)
                .await
                .map_err(Failure::Call)?
        {
            return Ok(delivered(id.into_string(), LearnedBy::Found));
        }
        // Only a call that may create a guest spends from the budget.
        self.spend(row).await?;
        match self.client.create_guest(&guest).await {
            Ok(id) => Ok(delivered(id.into_string(), LearnedBy::Created)),
            // Older docs: 422 for an existing guest. Only a miss on look-up makes it final.
            Err(CallError::Unprocessable { message }) => {
                match self.client.find_guest(&guest.email).await {
                    Ok(Some(id)) => Ok(delivered(id.into_string(), LearnedBy::Existing)),
                    Ok(None) => Err(Failure::Rejected(message)),
                    Err(error) => Err(Failure::Call(error)),
                }
            }
            Err(error) => Err(Failure::Call(error)),
        }
    }

    /// Completes an event its CRM's webhook only named (no Tallyfy call in this attempt; the row
    /// is then delivered as an ordinary one), unless that CRM holds us off after a 429.
    async fn complete(&self, row: &Claimed, pending: StoredEvent) -> Result<Outcome, Failure> {
        let Some(crm) = pending.crm() else {
            return Err(Failure::Unusable(
                "the row has nothing to read from a CRM".into(),
            ));
        };
        let hold = self.crm_hold(crm) - self.clock.now_ms();
        if hold > 0 {
            let retry_after = Some(Duration::from_millis(hold as u64));
            return Err(Failure::Fetch {
                crm,
                error: FetchError::RateLimited { retry_after },
            });
        }
        let read = match (pending, &row.email) {
            (StoredEvent::HubspotContact { contact_id, .. }, _) => {
                self.fetch_contact(&contact_id).await
            }
            (StoredEvent::PipedrivePerson { org_id, guest }, Some(email)) => self
                .fetch_company(&OrgRef { org_id }, guest)
                .await
                .map(|guest| Ok(fetched(email.clone(), guest))),
            (StoredEvent::PipedrivePerson { .. }, None) | (StoredEvent::Guest { .. }, _) => {
                return Err(Failure::Unusable(
                    "the row has no email for its guest".into(),
                ));
            }
        };
        read.unwrap_or_else(|error| Err(Failure::Fetch { crm, error }))
    }

    /// The HubSpot contact as the row's guest, under the email it turns out to have.
    async fn fetch_contact(
        &self,
        contact_id: &str,
    ) -> Result<Result<Outcome, Failure>, FetchError> {
        let hubspot = self
            .crms
            .hubspot
            .as_ref()
            .ok_or(FetchError::NotConfigured)?;
        let draft = hubspot.fetch_contact(contact_id).await?;
        Ok(match draft.into_guest() {
            Ok(drafted) => {
                if !drafted.dropped.is_empty() {
                    let left_out: Vec<&str> = drafted.dropped.iter().map(|p| p.field).collect();
                    tracing::info!(?left_out, "Fields over Tallyfy's limits left out");
                }
                Ok(fetched(drafted.normalised_email.into(), drafted.guest))
            }
            // Retrying will not change it; the refusal says where to fix it.
            Err(problem) => Ok(Outcome::Refused {
                reason: format!("HubSpot contact {contact_id}: {}", problem.message),
                refusal: Refusal {
                    code: match problem.code {
                        "missing_field" => "no_email_in_crm",
                        code => code,
                    },
                    field: "properties.email",
                    // Digits only: checked when the webhook was stored.
                    record_id: Some(contact_id.to_owned()),
                },
            }),
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
}

//! Reconcile and connect against fakes of each CRM's API: what the CRM created is queued once,
//! whether it came by webhook, by reconcile or both.

mod fake_pipedrive;
mod pipedrive;

//! Where a reconcile's pages go: each listed contact the bridge has not seen is queued through
//! the writer (sharing its group commits), each without a usable email kept as refused once;
//! a dry run only counts.

use std::collections::HashMap;

use futures_util::future::join_all;

use crate::crm::listing::{Listed, ListedContact, PageSink};
use crate::outbox::{Accepted, CrmRecord, NewEvent, NewRefusal, RecordState, Store, WriterHandle};

/// What the pages so far came to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Counts {
    pub pages: u64,
    pub listed: u64,
    pub queued: u64,
    pub already: u64,
    pub refused: u64,
}

pub(super) struct QueueSink<'a> {
    source: &'static str,
    store: &'a dyn Store,
    writer: &'a WriterHandle,
    dry_run: bool,
    counts: Counts,
}

impl<'a> QueueSink<'a> {
    pub fn new(
        source: &'static str,
        store: &'a dyn Store,
        writer: &'a WriterHandle,
        dry_run: bool,
    ) -> Self {
        Self {
            source,
            store,
            writer,
            dry_run,
            counts: Counts::default(),
        }
    }

    pub fn counts(&self) -> Counts {
        self.counts
    }
}

#[async_trait::async_trait]
impl PageSink for QueueSink<'_> {
    async fn page(&mut self, contacts: Vec<Listed>) -> anyhow::Result<()> {
        self.counts.pages += 1;
        self.counts.listed += contacts.len() as u64;
        let ids: Vec<String> = contacts.iter().map(|c| c.record_id.clone()).collect();
        let known: HashMap<String, RecordState> =
            self.store.record_states(self.source, &ids).await?;
        let (mut events, mut refusals) = (Vec::new(), Vec::new());
        for listed in contacts {
            let state = known.get(&listed.record_id).copied().unwrap_or_default();
            // Queued before and not refused since: the webhook (or an earlier run) had it.
            let queued_before = state.outbox_id.is_some() && !state.open_refusal;
            match listed.contact {
                ListedContact::Guest { .. } | ListedContact::Refused { .. } if queued_before => {
                    self.counts.already += 1;
                }
                // Refused before and still without an email.
                ListedContact::Refused { .. } if state.open_refusal => self.counts.already += 1,
                ListedContact::Guest { .. } if self.dry_run => self.counts.queued += 1,
                ListedContact::Refused { .. } if self.dry_run => self.counts.refused += 1,
                ListedContact::Guest { email, event } => events.push(NewEvent {
                    source: self.source,
                    event_id: None,
                    email: Some(email),
                    crm_record: None,
                    payload: event.encode(),
                    record: Some(CrmRecord::unseen(listed.record_id)),
                }),
                ListedContact::Refused { field, code } => refusals.push(NewRefusal {
                    source: self.source,
                    // Kept once however many runs list it.
                    event_id: Some(format!("reconcile:{}", listed.record_id)),
                    record_id: Some(listed.record_id),
                    notification_id: None,
                    reason: code,
                    field,
                }),
            }
        }
        let writer = self.writer;
        let appended = join_all(events.into_iter().map(|event| writer.append(event))).await;
        let kept = join_all(refusals.into_iter().map(|refusal| writer.refuse(refusal))).await;
        for result in appended {
            match result? {
                Accepted::Stored { .. } => self.counts.queued += 1,
                Accepted::Duplicate { .. } | Accepted::NotNeeded => self.counts.already += 1,
            }
        }
        for result in kept {
            result?;
            self.counts.refused += 1;
        }
        Ok(())
    }
}

//! Group commit for attempt results: whichever finished attempt takes the commit lock writes
//! every result waiting at that moment in one transaction, so concurrent attempts share an fsync.

use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::outbox::{AttemptResult, Store};

type Waiting = (AttemptResult, oneshot::Sender<Result<bool, String>>);

#[derive(Default)]
pub(super) struct Recorder {
    /// Results not yet written, each with the attempt waiting for its answer.
    waiting: Mutex<Vec<Waiting>>,
    /// Held while a batch commits; the next holder writes what piled up meanwhile.
    committing: tokio::sync::Mutex<()>,
}

impl Recorder {
    /// Writes `result` (with whatever else is waiting) and says whether the attempt still owned
    /// its row. An error means nothing of the batch was written.
    pub(super) async fn record(
        &self,
        store: &dyn Store,
        org_id: &str,
        result: AttemptResult,
    ) -> anyhow::Result<bool> {
        let (answer, answered) = oneshot::channel();
        self.lock_waiting().push((result, answer));
        {
            let _turn = self.committing.lock().await;
            let batch = std::mem::take(&mut *self.lock_waiting());
            if !batch.is_empty() {
                let (results, answers): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
                match store.record(org_id, &results).await {
                    Ok(owned) => {
                        for (answer, owned) in answers.into_iter().zip(owned) {
                            let _ = answer.send(Ok(owned));
                        }
                    }
                    Err(error) => {
                        let error = format!("{error:#}");
                        for answer in answers {
                            let _ = answer.send(Err(error.clone()));
                        }
                    }
                }
            }
        }
        match answered.await {
            Ok(Ok(owned)) => Ok(owned),
            Ok(Err(error)) => Err(anyhow::anyhow!(error)),
            Err(_) => Err(anyhow::anyhow!("the batch holding this result was dropped")),
        }
    }

    fn lock_waiting(&self) -> std::sync::MutexGuard<'_, Vec<Waiting>> {
        // A panic while pushing or taking cannot leave the Vec inconsistent.
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

//! What an attempt's outcome does to its row, whichever backend records it.

use crate::domain::outcome::Outcome;
use crate::outbox::RowState;

/// What an outcome does to its row; `None` leaves a column as it is.
pub(crate) struct RowChange<'a> {
    pub state: RowState,
    pub next_attempt_at: Option<i64>,
    /// Gives the attempt back: the wait was imposed, not a failure of the delivery.
    pub refund: bool,
    pub last_error: Option<&'a str>,
    /// A fetched CRM record: the row's email and guest from now on.
    pub email: Option<&'a str>,
    pub payload: Option<&'a str>,
}

impl<'a> RowChange<'a> {
    pub(crate) fn of(outcome: &'a Outcome, now: i64) -> Self {
        let change = |state, next_attempt_at, refund| RowChange {
            state,
            next_attempt_at,
            refund,
            last_error: outcome.error(),
            email: None,
            payload: None,
        };
        match outcome {
            Outcome::Delivered { .. } => change(RowState::Delivered, None, false),
            Outcome::Fetched { email, payload } => RowChange {
                email: Some(email),
                payload: Some(payload),
                ..change(RowState::Queued, Some(now), true)
            },
            Outcome::Retry { at, spent, .. } => change(RowState::Retrying, Some(*at), !spent),
            Outcome::RateLimited { until, .. } | Outcome::Paced { until, .. } => {
                change(RowState::Retrying, Some(*until), true)
            }
            // Due again at once: the worker's pause decides when anything is tried.
            Outcome::Paused { .. } => change(RowState::Retrying, Some(now), true),
            Outcome::Failed { .. } | Outcome::Refused { .. } => {
                change(RowState::Failed, None, false)
            }
        }
    }
}

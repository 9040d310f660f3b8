//! How one delivery attempt ended: the one type the worker decides, storage records (row, ledger,
//! attempt log, delivery gate) and tests assert on.

/// How the bridge knows a guest's id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "TEXT", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum LearnedBy {
    /// An earlier row of the same email recorded it: no call was made.
    Ledger,
    /// This attempt created the guest.
    Created,
    /// A look-up found it (an earlier attempt may have created it and lost the answer).
    Found,
    /// Tallyfy answered 422 to the create and a look-up then found the guest.
    Existing,
}

/// Where an attempt that did not deliver stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// Reading the CRM record a webhook only named.
    Fetch,
    /// Talking to Tallyfy (or the local database before it).
    Tallyfy,
}

/// A CRM record that cannot become a guest, as `refused` keeps it: a code, the field at fault
/// in the CRM's naming and the record's id, never its contact data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// `no_email_in_crm`, `invalid_email`
    pub code: &'static str,
    pub field: &'static str,
    pub record_id: Option<String>,
}

/// The end of one attempt. Every variant says what becomes of the row; `RateLimited` and
/// `Paused` also change what every worker may do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The guest exists in Tallyfy.
    Delivered {
        guest_id: String,
        learned_by: LearnedBy,
    },
    /// The CRM record the row only named was read: the row now holds its guest under its email
    /// and is due at once, as an ordinary row. Tallyfy was not called; no attempt is spent.
    Fetched { email: String, payload: String },
    /// The row is due again at `at`. `spent: false` gives the attempt back: the wait was
    /// imposed (a CRM's 429, a CRM token missing or refused), not a failure of the delivery.
    Retry {
        at: i64,
        reason: String,
        status: Option<u16>,
        stage: Stage,
        spent: bool,
    },
    /// Tallyfy's 429: nothing is sent before `until`; the row waits until then, attempt given
    /// back.
    RateLimited { until: i64, reason: String },
    /// The hourly create budget: the row waits until `until`, attempt given back. The bridge's
    /// own budget was spent before the POST (another worker spent it), or `by_tallyfy`: Tallyfy's
    /// 429 said its hourly guest-invite cap is reached, and the budget is emptied until then.
    Paced {
        until: i64,
        reason: String,
        by_tallyfy: bool,
    },
    /// Tallyfy refused the credentials, or none could be had from its token endpoint (`status`
    /// is then the endpoint's, `None` without an answer): delivery pauses with this reason; the
    /// row is due again at once (the pause decides when it is tried), attempt given back.
    Paused { reason: String, status: Option<u16> },
    /// Nothing more will be tried for this row.
    Failed {
        reason: String,
        status: Option<u16>,
        stage: Stage,
    },
    /// The CRM record read has no usable email: the row fails like `Failed` (an operator may
    /// retry it once the record is fixed) and the refusal is kept with it.
    Refused { reason: String, refusal: Refusal },
}

/// The attempt log's name for an outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, sqlx::Type, utoipa::ToSchema)]
#[sqlx(type_name = "TEXT", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum AttemptClass {
    Delivered,
    Fetched,
    FetchFailed,
    Retry,
    RateLimited,
    Paced,
    Paused,
    Failed,
}

impl Outcome {
    pub fn class(&self) -> AttemptClass {
        match self {
            Self::Delivered { .. } => AttemptClass::Delivered,
            Self::Fetched { .. } => AttemptClass::Fetched,
            Self::Retry {
                stage: Stage::Fetch,
                ..
            }
            | Self::Failed {
                stage: Stage::Fetch,
                ..
            } => AttemptClass::FetchFailed,
            Self::Retry { .. } => AttemptClass::Retry,
            Self::RateLimited { .. } => AttemptClass::RateLimited,
            Self::Paced { .. } => AttemptClass::Paced,
            Self::Paused { .. } => AttemptClass::Paused,
            Self::Failed { .. } | Self::Refused { .. } => AttemptClass::Failed,
        }
    }

    /// The HTTP status of the answer that decided the attempt, if one came back.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::RateLimited { .. } => Some(429),
            Self::Paced { by_tallyfy, .. } => by_tallyfy.then_some(429),
            Self::Retry { status, .. }
            | Self::Failed { status, .. }
            | Self::Paused { status, .. } => *status,
            Self::Delivered { .. } | Self::Fetched { .. } | Self::Refused { .. } => None,
        }
    }

    /// Why the row was not delivered, for its `last_error` and the attempt log.
    pub fn error(&self) -> Option<&str> {
        match self {
            Self::Delivered { .. } | Self::Fetched { .. } => None,
            Self::Retry { reason, .. }
            | Self::RateLimited { reason, .. }
            | Self::Paced { reason, .. }
            | Self::Paused { reason, .. }
            | Self::Failed { reason, .. }
            | Self::Refused { reason, .. } => Some(reason),
        }
    }

    /// Tallyfy answered this attempt with something other than a credentials refusal: the
    /// credentials work (a ledger hit or a connection failure says nothing about them).
    pub fn accepted_by_tallyfy(&self) -> bool {
        match self {
            Self::Delivered { learned_by, .. } => *learned_by != LearnedBy::Ledger,
            Self::Retry {
                stage: Stage::Tallyfy,
                status,
                ..
            }
            | Self::Failed {
                stage: Stage::Tallyfy,
                status,
                ..
            } => status.is_some(),
            Self::Retry { .. }
            | Self::Failed { .. }
            | Self::Fetched { .. }
            | Self::Refused { .. }
            | Self::RateLimited { .. }
            | Self::Paced { .. }
            | Self::Paused { .. } => false,
        }
    }
}

/// The attempt's result arrived after its lease had passed to another attempt (or could not be
/// written): the row is that attempt's now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseLost;

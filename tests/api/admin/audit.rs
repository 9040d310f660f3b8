//! The audit trail: every admin write leaves a row in the same transaction as its change, with
//! the request id the caller was answered with, readable newest first through `GET /audit`.

//! The pipeline's own vocabulary, shared by ingest, the CRM readers, delivery, storage and the
//! admin endpoints: a normalised email, the contact a CRM sent, the guest to create and its
//! limits, and how a delivery attempt ended.

mod contact;
mod email;
pub mod event;
mod guest;
pub mod outcome;
pub mod pacing;

pub use contact::{ContactDraft, Drafted, FieldProblem};
pub use email::{EMAIL_MAX, LOCAL_MAX, NormalisedEmail, lookup_key};
pub use guest::{Guest, LIST_MAX, NAME_MAX, PHONE_MAX, has_control};

//! Typed client for Tallyfy's guest API: maps the domain's guest to Tallyfy's request, builds
//! authenticated requests and sorts every outcome into a `CallError` so the delivery worker can
//! choose retry, look-up or fail.

mod client;
pub(crate) mod error;
mod redact;
pub(crate) mod types;

pub use client::{ClientConfig, TallyfyClient};
pub use error::CallError;
pub use types::{GuestId, GuestRequest};

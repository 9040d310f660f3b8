//! Typed client for Tallyfy's guest API: builds authenticated requests and sorts every
//! outcome into a `CallError` class so the delivery worker can choose retry, look-up or fail.

mod client;
mod email;
pub(crate) mod error;
pub mod fields;
pub(crate) mod types;

pub use client::{ClientConfig, TallyfyClient};
pub use error::CallError;
pub use types::{GuestId, GuestRequest};

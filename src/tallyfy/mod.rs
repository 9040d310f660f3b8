//! Typed client for Tallyfy's guest API: maps the domain's guest to Tallyfy's request, builds
//! authenticated requests and sorts every outcome into a `CallError` so the delivery worker can
//! choose retry, look-up or fail. The bearer token comes from [`Credentials`]: a personal
//! access token, or an OAuth token renewed in memory.

mod client;
mod credentials;
pub(crate) mod error;
mod expiry;
mod jwt;
mod oauth;
mod redact;
mod settings;
pub(crate) mod types;

pub use client::{ClientConfig, TallyfyClient};
pub use credentials::{Credentials, Now};
pub use error::CallError;
pub use expiry::{CredentialsStatus, TallyfyStatus, watch_expiry};
pub use oauth::OAuthConfig;
pub use types::{GuestId, GuestRequest};

//! tallyfy-bridge: CRM contact webhooks in, Tallyfy guests out, exactly once per email.
//! Data flows one way: `ingest` → `outbox` (storage) → `delivery` → `tallyfy` (and `crm`, the
//! CRM APIs the worker reads when a webhook names a record instead of carrying it), all in the
//! vocabulary of `domain`; `status` and `ops` only read.
//! The fake Tallyfy for tests and demos is the `tallyfy-sandbox` crate, not part of this one.

pub mod api_error;
pub mod cli;
pub mod configuration;
pub mod console;
pub mod crm;
pub mod delivery;
pub mod domain;
#[cfg(fuzzing)]
pub mod fuzzing;
pub mod http_auth;
pub mod ingest;
pub mod metrics;
pub mod openapi;
pub mod ops;
pub mod outbox;
pub mod reconcile;
pub mod request_span;
pub mod startup;
pub mod status;
pub mod tallyfy;
pub mod telemetry;
pub mod time;
pub mod upstream;

pub use configuration::Settings;
pub use startup::Application;

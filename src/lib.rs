//! tallyfy-bridge: CRM contact webhooks in, Tallyfy guests out, exactly once per email.
//! Data flows one way: `ingest` → `outbox` → `delivery` → `tallyfy` (and `hubspot`, whose
//! webhooks name a contact the worker must fetch); `status` only reads,
//! `sandbox` is a fake Tallyfy for tests and demos.

pub mod api_error;
pub mod configuration;
pub mod delivery;
pub mod hubspot;
pub mod ingest;
pub mod ops;
pub mod outbox;
pub mod sandbox;
pub mod startup;
pub mod status;
pub mod tallyfy;
pub mod telemetry;
pub mod timefmt;

pub use configuration::Settings;
pub use startup::Application;

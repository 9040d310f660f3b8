//! Pipedrive's reconcile and connect against the fake Pipedrive API over loopback: persons
//! listed newest first until the window's start, rate limits waited out, the `create.person`
//! webhook made once; through the webhook adapter, email later and owner mapping; and the
//! reconcile endpoint end to end against the sandbox.

mod connect;
mod end_to_end;
mod listing;
mod webhooks;

use std::sync::Mutex;
use std::time::Duration;

use tallyfy_bridge::configuration::PipedriveSettings;
use tallyfy_bridge::crm::pipedrive::pacing::Pause;

use super::fake_pipedrive::FakePipedrive;
use crate::sources::{PIPEDRIVE_PASSWORD, PIPEDRIVE_TOKEN, PIPEDRIVE_USER};

/// 2026-01-01T00:00:00Z; person `i` of a test is created `i` minutes before it.
const T0: i64 = 1_767_225_600_000;
const MINUTE: i64 = 60_000;

/// The `[sources.pipedrive]` overrides that point the bridge at `fake`.
fn pipedrive_env(fake: &FakePipedrive) -> Vec<(&'static str, String)> {
    vec![
        (
            "BRIDGE__SOURCES__PIPEDRIVE__USERNAME",
            PIPEDRIVE_USER.to_owned(),
        ),
        (
            "BRIDGE__SOURCES__PIPEDRIVE__PASSWORD",
            PIPEDRIVE_PASSWORD.to_owned(),
        ),
        (
            "BRIDGE__SOURCES__PIPEDRIVE__API_TOKEN",
            PIPEDRIVE_TOKEN.to_owned(),
        ),
        (
            "BRIDGE__SOURCES__PIPEDRIVE__API_BASE_URL",
            fake.base_url.clone(),
        ),
    ]
}

/// `[sources.pipedrive]` against `fake`, as an operator would set it, plus `extra`.
fn settings(fake: &FakePipedrive, extra: &[(&str, String)]) -> PipedriveSettings {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut overrides = pipedrive_env(fake);
    overrides.extend(extra.iter().cloned());
    crate::helpers::test_settings_with(dir.path(), &overrides)
        .sources
        .pipedrive
}

/// The waits a run asked for, instead of sleeping them.
#[derive(Default)]
pub struct Waits(Mutex<Vec<Duration>>);

#[async_trait::async_trait]
impl Pause for Waits {
    async fn pause(&self, wait: Duration) {
        self.0.lock().expect("waits").push(wait);
    }
}

impl Waits {
    fn taken(&self) -> Vec<Duration> {
        self.0.lock().expect("waits").clone()
    }
}

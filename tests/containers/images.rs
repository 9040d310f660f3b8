//! Makes sure `tallyfy-bridge:local`, `tallyfy-sandbox:local` and `tallyfy-postgres:local` exist
//! and match the sources:
//! if either is missing or was built from other sources, `scripts/build-images.sh` runs (the
//! first time this needs the root filesystem and a release build: minutes, not seconds).

use std::time::{Duration, Instant};

use crate::docker::{Engine, notice, run_with_limit};

pub const BRIDGE_IMAGE: &str = "tallyfy-bridge:local";
pub const SANDBOX_IMAGE: &str = "tallyfy-sandbox:local";
pub const POSTGRES_IMAGE: &str = "tallyfy-postgres:local";
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/build-images.sh");
const LABEL: &str = "{{index .Config.Labels \"org.tallyfy-bridge.source-hash\"}}";

pub fn ensure(engine: &Engine) {
    let wanted = engine.run(SCRIPT, &["--source-hash"], Duration::from_secs(30));
    let stale: Vec<&str> = [BRIDGE_IMAGE, SANDBOX_IMAGE, POSTGRES_IMAGE]
        .into_iter()
        .filter(|image| {
            let out = engine.try_run(
                "docker",
                &["image", "inspect", "--format", LABEL, image],
                Duration::from_secs(30),
            );
            !out.status.success() || String::from_utf8_lossy(&out.stdout).trim() != wanted
        })
        .collect();
    if stale.is_empty() {
        return;
    }
    notice(&format!(
        "container tests: {} missing or built from other sources; running {SCRIPT}",
        stale.join(", ")
    ));
    let started = Instant::now();
    let mut command = engine.command(SCRIPT);
    command.current_dir(env!("CARGO_MANIFEST_DIR"));
    let out = run_with_limit(command, Duration::from_secs(45 * 60));
    assert!(
        out.status.success(),
        "{SCRIPT} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    notice(&format!(
        "container tests: images built in {:.0?}",
        started.elapsed()
    ));
}

//! The shipped Prometheus alert rules: `promtool check rules` accepts them and `promtool test
//! rules` proves each fires on a broken bridge's series and not on a healthy one's. Without
//! promtool this prints a notice and passes, unless `REQUIRE_PROMTOOL=1` (CI sets it).

use std::path::Path;
use std::process::Command;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus");

/// `promtool args…` in deploy/prometheus, or `None` when promtool is not installed (allowed).
fn promtool(args: &[&str]) -> Option<std::process::Output> {
    match Command::new("promtool")
        .args(args)
        .current_dir(DIR)
        .output()
    {
        Ok(output) => Some(output),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var("REQUIRE_PROMTOOL").as_deref() != Ok("1"),
                "REQUIRE_PROMTOOL=1 but promtool is not installed (deploy/prometheus/install-promtool.sh)"
            );
            eprintln!(
                "NOTICE: promtool not found; alert rules not checked (install Debian's prometheus)"
            );
            None
        }
        Err(error) => panic!("Failed to run promtool: {error}"),
    }
}

fn assert_succeeds(args: &[&str]) {
    if let Some(output) = promtool(args) {
        assert!(
            output.status.success(),
            "promtool {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn the_alert_rules_are_valid() {
    assert!(Path::new(DIR).join("alerts.yml").exists());
    assert_succeeds(&["check", "rules", "alerts.yml"]);
}

#[test]
fn each_alert_fires_on_its_sample_series_and_not_on_a_healthy_one() {
    assert_succeeds(&["test", "rules", "alerts_test.yml"]);
}

#[test]
fn every_alert_has_a_promtool_test() {
    let read = |file: &str| std::fs::read_to_string(Path::new(DIR).join(file)).expect(file);
    let (rules, tests) = (read("alerts.yml"), read("alerts_test.yml"));
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- alert: "))
        .collect();
    assert_eq!(alerts.len(), 7, "{alerts:?}");
    for alert in alerts {
        let tested = tests
            .lines()
            .filter(|line| line.trim() == format!("alertname: {alert}"))
            .count();
        assert!(
            tested >= 2,
            "{alert}: a firing and a silent case in alerts_test.yml"
        );
    }
}

//! `tallyfy-bridge deliveries …` as the real binary against a spawned app.

use std::process::{Command, Output};

use serde_json::Value;

use super::{Seed, TOKEN, admin_app, get, ids, seed};
use crate::binary::BINARY;
use crate::helpers::TestApp;

/// Runs `tallyfy-bridge args…` against `app` with `token` in the environment.
async fn run(app: &TestApp, token: Option<&str>, args: &[&str]) -> Output {
    let mut command = Command::new(BINARY);
    command.env_clear().args(args).args(["--url", &app.address]);
    if let Some(token) = token {
        command.env("BRIDGE__ADMIN__TOKEN", token);
    }
    tokio::task::spawn_blocking(move || command.output().expect("the binary runs"))
        .await
        .expect("joined")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("utf-8")
}

/// A failure: one line on stderr, a non-zero exit, nothing on stdout.
fn failure(output: &Output) -> String {
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8(output.stderr.clone()).expect("utf-8");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

async fn state(app: &TestApp, id: i64) -> String {
    let (_, body) = get(app, &format!("/deliveries/{id}")).await;
    body["delivery"]["state"]
        .as_str()
        .expect("state")
        .to_owned()
}

#[tokio::test]
async fn an_operator_lists_shows_retries_and_cancels_from_the_command_line() {
    let app = admin_app().await;
    let db = app.db().await;
    let row = |state, received_at| Seed {
        source: "hubspot",
        email: "cli@example.com",
        state,
        received_at,
    };
    let t0 = 1_796_119_200_000;
    let rows = seed(
        &db,
        &[
            row("failed", t0),
            row("queued", t0 + 1000),
            row("failed", t0 + 2000),
            row("delivered", t0 + 3000),
            row("failed", t0 + 4000),
        ],
    )
    .await;

    // list: a table, newest first, filtered.
    let table = stdout(
        &run(
            &app,
            Some(TOKEN),
            &["deliveries", "list", "--state", "failed"],
        )
        .await,
    );
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("STATE"),
        "{table}"
    );
    let listed: Vec<i64> = lines[1..]
        .iter()
        .map(|l| {
            l.split_whitespace()
                .next()
                .expect("id")
                .parse()
                .expect("number")
        })
        .collect();
    assert_eq!(listed, vec![rows[4], rows[2], rows[0]], "{table}");
    let paged = stdout(&run(&app, Some(TOKEN), &["deliveries", "list", "--limit", "2"]).await);
    assert!(
        paged
            .lines()
            .last()
            .is_some_and(|l| l.starts_with("more: --cursor ")),
        "{paged}"
    );

    // --json: the API's own answer.
    let json = stdout(
        &run(
            &app,
            Some(TOKEN),
            &["deliveries", "list", "--json", "--email", "CLI@example.com"],
        )
        .await,
    );
    let parsed: Value = serde_json::from_str(&json).expect("JSON");
    let (_, api) = get(&app, "/deliveries?email=cli%40example.com").await;
    assert_eq!(parsed, api);
    assert_eq!(ids(&parsed).len(), 5);

    // show
    let shown = stdout(
        &run(
            &app,
            Some(TOKEN),
            &["deliveries", "show", &rows[0].to_string()],
        )
        .await,
    );
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("state") && l.ends_with("failed")),
        "{shown}"
    );

    // retry and cancel one row.
    let retried = stdout(
        &run(
            &app,
            Some(TOKEN),
            &["deliveries", "retry", &rows[0].to_string()],
        )
        .await,
    );
    assert!(retried.contains("queued"), "{retried}");
    assert_eq!(state(&app, rows[0]).await, "queued");
    stdout(
        &run(
            &app,
            Some(TOKEN),
            &["deliveries", "cancel", &rows[1].to_string()],
        )
        .await,
    );
    assert_eq!(state(&app, rows[1]).await, "cancelled");

    // Bulk by filter, bounded.
    let bulk = stdout(
        &run(
            &app,
            Some(TOKEN),
            &["deliveries", "retry", "--state", "failed", "--limit", "1"],
        )
        .await,
    );
    assert_eq!(bulk, "moved 1; more rows match: run it again\n");
    let bulk = run(
        &app,
        Some(TOKEN),
        &["deliveries", "retry", "--state", "failed", "--json"],
    )
    .await;
    let answer: Value = serde_json::from_str(&stdout(&bulk)).expect("JSON");
    assert_eq!(answer, serde_json::json!({"moved": 1, "more": false}));
    for id in [rows[2], rows[4]] {
        assert_eq!(state(&app, id).await, "queued");
    }
}

#[tokio::test]
async fn command_line_errors_are_one_line_with_the_apis_message_and_never_the_token() {
    let app = admin_app().await;
    let db = app.db().await;
    let delivered = seed(
        &db,
        &[Seed {
            source: "hubspot",
            email: "e@example.com",
            state: "delivered",
            received_at: 1,
        }],
    )
    .await[0]
        .to_string();

    let conflict = failure(&run(&app, Some(TOKEN), &["deliveries", "retry", &delivered]).await);
    assert!(
        conflict.contains("is delivered") && conflict.contains("HTTP 409"),
        "{conflict}"
    );
    assert!(!conflict.contains(TOKEN));

    let wrong = "a-wrong-token-that-must-not-show";
    let refused = failure(&run(&app, Some(wrong), &["deliveries", "list"]).await);
    assert!(refused.contains("HTTP 401"), "{refused}");
    assert!(!refused.contains(wrong), "{refused}");

    let bad = failure(
        &run(
            &app,
            Some(TOKEN),
            &["deliveries", "list", "--since", "noon"],
        )
        .await,
    );
    assert!(bad.contains("since") && bad.contains("HTTP 400"), "{bad}");

    let missing = failure(&run(&app, None, &["deliveries", "list"]).await);
    assert!(missing.contains("BRIDGE__ADMIN__TOKEN"), "{missing}");

    let both = failure(
        &run(
            &app,
            Some(TOKEN),
            &["deliveries", "cancel", &delivered, "--state", "failed"],
        )
        .await,
    );
    assert!(both.contains("not both"), "{both}");
}

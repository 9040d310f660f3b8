//! A personal access token: its JWT expiry shown ahead in `/status` and `/metrics`; once the
//! sandbox stops accepting it delivery pauses, and a restart with a new token delivers it all.

use tallyfy_bridge::domain::outcome::Outcome;
use tallyfy_sandbox::SandboxConfig;

use super::{AuthEnv, all_delivered, bridge, sandbox};

/// A JWT whose payload says it expires at `exp_secs` (the signature is not checked).
fn jwt(exp_secs: i64) -> String {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let part = |json: String| URL_SAFE_NO_PAD.encode(json);
    format!(
        "{}.{}.{}",
        part(r#"{"typ":"JWT","alg":"RS256"}"#.into()),
        part(format!(r#"{{"aud":"3","sub":"12","exp":{exp_secs}}}"#)),
        part("sig".into())
    )
}

#[tokio::test]
async fn a_token_expiring_in_ten_days_is_warned_about_in_status_and_metrics() {
    // Arrange: the sandbox accepts the JWT as its token.
    let exp = chrono::Utc::now().timestamp() + 10 * 86_400 + 3600;
    let token = jwt(exp);
    let sandbox = sandbox(SandboxConfig {
        token: token.clone(),
        ..SandboxConfig::default()
    })
    .await;
    let settings = bridge(&sandbox, &token, &[]);
    let env = AuthEnv::start(sandbox, &settings).await;

    // Act
    let status = env.status().await;
    let metrics = env.app.get("/metrics").await.text().await.expect("text");

    // Assert
    let credentials = &status["tallyfy"]["credentials"];
    assert_eq!(credentials["mode"], "token");
    assert_eq!(credentials["expires_in_days"], 10);
    let warning = credentials["warning"].as_str().expect("a warning");
    assert!(warning.contains("expires in 10 days"), "{warning}");
    assert!(warning.contains("tallyfy.token"), "{warning}");
    assert!(credentials["expires_at"].is_string());
    assert!(
        metrics.contains(&format!(
            "tallyfy_bridge_tallyfy_credentials_expiry_timestamp_seconds {exp}.0"
        )),
        "{metrics}"
    );
    assert!(!status.to_string().contains(&token));
    assert!(!metrics.contains(&token));
    // It still works meanwhile.
    env.post("early@example.com").await;
    all_delivered(&env.drain().await);
}

#[tokio::test]
async fn a_token_no_longer_accepted_pauses_and_a_restart_with_a_new_one_delivers_everything() {
    // Arrange: one delivered, then Tallyfy stops accepting the token (expired, or logged out).
    let sandbox = sandbox(SandboxConfig::default()).await;
    let settings = bridge(&sandbox, "sandbox-token", &[]);
    let env = AuthEnv::start(sandbox, &settings).await;
    env.post("before@example.com").await;
    all_delivered(&env.drain().await);
    env.sandbox.set_token("the-new-personal-token");
    let emails = ["x1@example.com", "x2@example.com", "x3@example.com"];
    for email in emails {
        env.post(email).await;
    }

    // Act 1
    let outcomes = env.drain().await;

    // Assert 1: paused, nothing created, the rows wait with their attempts given back.
    assert!(
        matches!(
            outcomes.as_slice(),
            [
                ..,
                Outcome::Paused {
                    status: Some(401),
                    ..
                }
            ]
        ),
        "{outcomes:?}"
    );
    assert_eq!(env.status().await["delivery"]["paused"], true);
    env.post("while-paused@example.com").await;

    // Act 2: the operator restarts with the new token.
    let new_settings = bridge(&env.sandbox, "the-new-personal-token", &[]);
    let env = env.restart_with(&new_settings).await;
    let outcomes = env.drain().await;

    // Assert 2
    all_delivered(&outcomes);
    assert_eq!(env.status().await["delivery"]["paused"], false);
    env.assert_created_once(&[
        "before@example.com",
        "x1@example.com",
        "x2@example.com",
        "x3@example.com",
        "while-paused@example.com",
    ]);
}

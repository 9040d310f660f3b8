//! `GET /openapi.json`: an OpenAPI 3.1 document whose paths are exactly the routes the app
//! registers, and whose schemas the real answers (status, lists, errors) validate against.

use std::collections::BTreeSet;
use std::path::Path;

use reqwest::Method;
use serde_json::{Value, json};
use tallyfy_sandbox::SandboxConfig;

use crate::admin::{TOKEN, admin_env};
use crate::helpers::{TestApp, spawn_app_with};

async fn document(app: &TestApp) -> Value {
    let response = app.get("/openapi.json").await;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().ok(),
        Some("application/json")
    );
    response.json().await.expect("the document is JSON")
}

/// Every route registered in src/: the path literal given to `.route(` or `web::resource(`,
/// with the method of the first `web::get()`/`web::post()`… after it.
fn registered_routes() -> BTreeSet<(String, String)> {
    fn walk(dir: &Path, found: &mut BTreeSet<(String, String)>) {
        for entry in std::fs::read_dir(dir).expect("src readable") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("source readable");
                // Whitespace removed: the literal may be on the line after the call.
                let flat: String = text.split_whitespace().collect();
                // Routes after a `web::scope("/prefix")` in a file are under that prefix.
                let scope = flat.find("web::scope(\"").map(|at| {
                    let rest = &flat[at + "web::scope(\"".len()..];
                    (at, rest[..rest.find('"').expect("literal ends")].to_owned())
                });
                for marker in [".route(\"", "web::resource(\""] {
                    for (at, _) in flat.match_indices(marker) {
                        let rest = &flat[at + marker.len()..];
                        let end = rest.find('"').expect("literal ends");
                        let prefix = match &scope {
                            Some((scope_at, prefix)) if *scope_at < at => prefix.as_str(),
                            _ => "",
                        };
                        let method = ["get", "post", "put", "patch", "delete"]
                            .into_iter()
                            .filter_map(|m| rest.find(&format!("web::{m}()")).map(|i| (i, m)))
                            .min()
                            .map(|(_, m)| m.to_owned())
                            .expect("a method follows the route");
                        let pattern = tallyfy_bridge::openapi::documented_path(&rest[..end]);
                        found.insert((method, format!("{prefix}{pattern}")));
                    }
                }
            }
        }
    }
    let mut found = BTreeSet::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut found,
    );
    found
}

/// A validator of the JSON answer `path` `method` documents for `status`, with the document's
/// components in scope so its `$ref`s resolve.
fn validator(doc: &Value, path: &str, method: &str, status: u16) -> jsonschema::Validator {
    let schema = &doc["paths"][path][method]["responses"][status.to_string()]["content"]["application/json"]
        ["schema"];
    assert!(
        schema.is_object(),
        "{method} {path} documents no JSON {status}"
    );
    let root = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "components": doc["components"],
        "allOf": [schema],
    });
    jsonschema::options()
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|error| panic!("{method} {path} {status}: bad schema: {error}"))
}

fn assert_conforms(doc: &Value, path: &str, method: &str, status: u16, body: &Value) {
    let validator = validator(doc, path, method, status);
    let errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {path} {status} does not match its schema: {errors:?}\n{body:#}"
    );
}

/// GET or POST with the admin token; the status and JSON answer.
async fn call(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = app
        .client
        .request(method, format!("{}{path}", app.address))
        .bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("sent");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON answer"))
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_every_ref_resolves() {
    let app = spawn_app_with(&[]).await;
    let doc = document(&app).await;
    assert!(
        doc["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.1.")),
        "{}",
        doc["openapi"]
    );
    // utoipa's own model reads it back: the fields are where OpenAPI puts them.
    let parsed: utoipa::openapi::OpenApi =
        serde_json::from_value(doc.clone()).expect("an OpenAPI document");
    assert!(!parsed.paths.paths.is_empty());
    let text = doc.to_string();
    for (at, _) in text.match_indices("\"$ref\":\"#/components/schemas/") {
        let rest = &text[at + "\"$ref\":\"#/components/schemas/".len()..];
        let name = &rest[..rest.find('"').expect("ref ends")];
        assert!(
            doc["components"]["schemas"][name].is_object(),
            "dangling $ref {name}"
        );
    }
    // Operation ids are unique (OpenAPI requires it; tools key operations by them).
    let mut ids = BTreeSet::new();
    for item in doc["paths"].as_object().expect("paths").values() {
        for operation in item.as_object().expect("path item").values() {
            let id = operation["operationId"].as_str().expect("an operationId");
            assert!(ids.insert(id.to_owned()), "operationId {id} is repeated");
        }
    }
    for scheme in [
        "admin_token",
        "metrics_token",
        "webhook_signature",
        "webhook_shared_secret",
        "webhook_basic",
    ] {
        assert!(
            doc["components"]["securitySchemes"][scheme].is_object(),
            "{scheme}"
        );
    }
    // Each component is a schema a JSON Schema 2020-12 validator compiles.
    for (name, _) in doc["components"]["schemas"].as_object().expect("schemas") {
        let root = json!({"components": doc["components"], "$ref": format!("#/components/schemas/{name}")});
        assert!(jsonschema::validator_for(&root).is_ok(), "{name}");
    }
}

#[tokio::test]
async fn every_registered_route_is_documented_and_every_documented_one_is_served() {
    let app = spawn_app_with(&[
        ("BRIDGE__ADMIN__TOKEN", TOKEN.into()),
        ("BRIDGE__METRICS__TOKEN", "metrics-token-for-tests".into()),
    ])
    .await;
    let doc = document(&app).await;
    let paths = doc["paths"].as_object().expect("paths");
    let documented: BTreeSet<(String, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            let methods = item.as_object().expect("path item").keys();
            methods.map(|method| (method.clone(), path.clone()))
        })
        .collect();
    let registered = registered_routes();
    assert!(registered.len() >= 15, "{registered:?}");
    assert_eq!(
        registered, documented,
        "routes the app registers vs paths /openapi.json documents"
    );
    // Each documented operation reaches its handler: the unknown-path fallback would answer
    // 404 "no such endpoint"; without credentials a protected one answers 401 instead.
    // The console redirects to its login page: the status documented is the 303 itself.
    let direct = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    for (path, item) in paths {
        let url_path = path
            .replace("{id}", "1")
            .replace("{email}", "a%40example.com")
            .replace("{source}", "contacts-nowhere")
            .replace("{token}", "t");
        for method in item.as_object().expect("path item").keys() {
            let method: Method = method.to_uppercase().parse().expect("method");
            let response = direct
                .request(method.clone(), format!("{}{url_path}", app.address))
                .send()
                .await
                .expect("sent");
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            assert!(
                !(status == 404 && body["error"]["message"] == "no such endpoint"),
                "{method} {path} is documented but not served"
            );
            assert!(
                doc["paths"][path][method.as_str().to_lowercase()]["responses"][status.to_string()]
                    .is_object(),
                "{method} {path} answered an undocumented {status}"
            );
        }
    }
}

#[tokio::test]
async fn real_answers_match_their_documented_schemas() {
    let env = admin_env(SandboxConfig::default(), &[]).await;
    let app = &env.app;
    let doc = document(app).await;

    // Ingest: 202 queued, 200 duplicate, 422 naming a field, 401, 415.
    let first = app
        .post_signed(
            "evt-schema-1",
            r#"{"email":"schema@example.com","first_name":"Ada"}"#,
        )
        .await;
    assert_eq!(first.status().as_u16(), 202);
    let body: Value = first.json().await.expect("json");
    assert_conforms(&doc, "/webhooks/contacts", "post", 202, &body);
    let again = app
        .post_signed(
            "evt-schema-1",
            r#"{"email":"schema@example.com","first_name":"Ada"}"#,
        )
        .await;
    assert_eq!(again.status().as_u16(), 200);
    assert_conforms(
        &doc,
        "/webhooks/contacts",
        "post",
        200,
        &again.json().await.expect("json"),
    );
    let bad = app.post_signed("evt-schema-2", r#"{"email":"nope"}"#).await;
    assert_eq!(bad.status().as_u16(), 422);
    assert_conforms(
        &doc,
        "/webhooks/contacts",
        "post",
        422,
        &bad.json().await.expect("json"),
    );
    let (status, body) = call(app, Method::POST, "/webhooks/contacts", Some(json!({}))).await;
    assert_eq!(status, 401);
    assert_conforms(&doc, "/webhooks/contacts", "post", 401, &body);
    env.catch_up();
    env.drain().await;

    // Status and health.
    let (status, body) = call(app, Method::GET, "/status", None).await;
    assert_eq!(status, 200);
    assert_conforms(&doc, "/status", "get", 200, &body);
    // The check has teeth: a wrong type, a missing section or a bad time fails it.
    let status_schema = validator(&doc, "/status", "get", 200);
    for (pointer, value) in [
        ("/uptime_secs", json!("soon")),
        ("/delivery/heartbeat_at", json!("yesterday")),
        ("/outbox/counts/queued", json!(null)),
    ] {
        let mut wrong = body.clone();
        *wrong.pointer_mut(pointer).expect("field exists") = value;
        assert!(!status_schema.is_valid(&wrong), "{pointer} passed");
    }
    let mut missing = body.clone();
    missing.as_object_mut().expect("object").remove("refused");
    assert!(!status_schema.is_valid(&missing));
    for (path, code) in [("/health/live", 200), ("/health/ready", 200)] {
        let (status, body) = call(app, Method::GET, path, None).await;
        assert_eq!(status, code);
        assert_conforms(&doc, path, "get", code, &body);
    }

    // The admin API, on a delivered row with its attempt log and ledger entry.
    let (status, list) = call(app, Method::GET, "/deliveries?limit=1", None).await;
    assert_eq!(status, 200);
    assert_conforms(&doc, "/deliveries", "get", 200, &list);
    let id = list["items"][0]["id"].as_i64().expect("a delivery");
    assert_eq!(list["items"][0]["state"], "delivered");
    let (status, one) = call(app, Method::GET, &format!("/deliveries/{id}"), None).await;
    assert_eq!(status, 200);
    assert!(!one["attempts"].as_array().expect("attempts").is_empty());
    assert_conforms(&doc, "/deliveries/{id}", "get", 200, &one);
    let (status, guest) = call(app, Method::GET, "/guests/schema%40example.com", None).await;
    assert_eq!(status, 200);
    assert_conforms(&doc, "/guests/{email}", "get", 200, &guest);
    let (status, conflict) =
        call(app, Method::POST, &format!("/deliveries/{id}/retry"), None).await;
    assert_eq!(status, 409);
    assert_conforms(&doc, "/deliveries/{id}/retry", "post", 409, &conflict);
    let (status, moved) = call(
        app,
        Method::POST,
        "/deliveries/cancel",
        Some(json!({"state": "failed"})),
    )
    .await;
    assert_eq!(status, 200);
    assert_conforms(&doc, "/deliveries/cancel", "post", 200, &moved);
    let queued = env.post(json!({"email": "later@example.com"})).await;
    let (status, cancelled) = call(
        app,
        Method::POST,
        &format!("/deliveries/{queued}/cancel"),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(cancelled["delivery"]["state"], "cancelled");
    assert_conforms(&doc, "/deliveries/{id}/cancel", "post", 200, &cancelled);
    let (status, body) = call(app, Method::POST, "/deliveries/retry", Some(json!([]))).await;
    assert_eq!(status, 400);
    assert_conforms(&doc, "/deliveries/retry", "post", 400, &body);
    let (status, audit) = call(app, Method::GET, "/audit", None).await;
    assert_eq!(status, 200);
    assert_eq!(audit["items"][0]["action"], "cancel");
    assert_conforms(&doc, "/audit", "get", 200, &audit);
    let (status, refused) = call(app, Method::GET, "/refused", None).await;
    assert_eq!(status, 200);
    assert_conforms(&doc, "/refused", "get", 200, &refused);

    // Errors: a bad parameter, an unknown id.
    let (status, body) = call(app, Method::GET, "/deliveries?limit=0", None).await;
    assert_eq!(status, 400);
    assert_conforms(&doc, "/deliveries", "get", 400, &body);
    let (status, body) = call(app, Method::GET, "/deliveries/999999", None).await;
    assert_eq!(status, 404);
    assert_conforms(&doc, "/deliveries/{id}", "get", 404, &body);
}

/// The documented states of each bulk body are the ones its action applies to.
#[tokio::test]
async fn each_bulk_body_documents_the_states_its_action_takes() {
    use tallyfy_bridge::ops::deliveries::RowAction;
    let app = spawn_app_with(&[]).await;
    let doc = document(&app).await;
    for (path, action) in [
        ("/deliveries/retry", RowAction::Retry),
        ("/deliveries/cancel", RowAction::Cancel),
    ] {
        let reference = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]
            ["schema"]["$ref"]
            .as_str()
            .expect("a $ref");
        let name = reference.trim_start_matches("#/components/schemas/");
        let state = &doc["components"]["schemas"][name]["properties"]["state"];
        let documented: BTreeSet<&str> = state["enum"]
            .as_array()
            .expect("an enum")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let applies: BTreeSet<&str> = action.from_states().iter().map(|s| s.as_str()).collect();
        assert_eq!(documented, applies, "{path}");
    }
}

/// Schemathesis finding: another method on a route answered the unknown-path 404.
#[tokio::test]
async fn another_method_on_a_known_path_gets_405_naming_the_allowed_ones() {
    let app = spawn_app_with(&[("BRIDGE__ADMIN__TOKEN", TOKEN.into())]).await;
    for (method, path, allow) in [
        (Method::POST, "/status", "GET"),
        (Method::TRACE, "/deliveries/retry", "POST"),
        (Method::DELETE, "/deliveries/7", "GET"),
        (Method::PUT, "/deliveries/7/cancel", "POST"),
        (Method::PATCH, "/metrics", "GET"),
        // Not a look-up of a delivery called `retry`: the id is digits.
        (Method::GET, "/deliveries/retry", "POST"),
        (Method::GET, "/deliveries/cancel", "POST"),
        (Method::POST, "/openapi.json", "GET"),
        (Method::GET, "/webhooks/contacts", "POST"),
        // The console's scope answers the same (schemathesis: TRACE /console got its 404 page).
        (Method::TRACE, "/console", "GET"),
        (Method::PUT, "/console/bulk", "GET, POST"),
    ] {
        let response = app
            .client
            .request(method.clone(), format!("{}{path}", app.address))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status().as_u16(), 405, "{method} {path}");
        assert_eq!(
            response.headers()["allow"].to_str().ok(),
            Some(allow),
            "{method} {path}"
        );
        let body: Value = response.json().await.expect("JSON error");
        assert_eq!(
            body["error"]["code"], "method_not_allowed",
            "{method} {path}"
        );
    }
    let response = app.get("/statuses").await;
    assert_eq!(response.status().as_u16(), 404);
    assert!(response.headers().get("allow").is_none());
}

/// Schemathesis findings: the request schemas were looser than the bridge, so valid-looking
/// requests were refused. Each input the bridge refuses, the document now refuses too.
#[tokio::test]
async fn the_request_schemas_refuse_what_the_bridge_refuses() {
    let app = spawn_app_with(&[("BRIDGE__ADMIN__TOKEN", TOKEN.into())]).await;
    let doc = document(&app).await;
    let body_schema = |path: &str| {
        let schema =
            &doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"];
        let root = json!({"components": doc["components"], "allOf": [schema]});
        jsonschema::validator_for(&root).expect("a schema")
    };
    let contact = body_schema("/webhooks/contacts");
    for members in [json!([0]), json!([9_007_199_254_740_992_u64])] {
        let body = json!({"email": "m@example.com", "associated_members": members});
        assert!(!contact.is_valid(&body), "{body}");
        let response = app.post_contact(body.clone()).await;
        assert_eq!(response.status().as_u16(), 422, "{body}");
    }
    assert!(contact.is_valid(&json!({"email": "m@example.com", "associated_members": [1]})));

    let bulk = body_schema("/deliveries/retry");
    let extra = json!({"state": "failed", "": 1});
    assert!(!bulk.is_valid(&extra));
    let (status, _) = call(&app, Method::POST, "/deliveries/retry", Some(extra)).await;
    assert_eq!(status, 400);

    for (path, query) in [
        ("/deliveries", "cursor="),
        ("/deliveries", "source="),
        ("/audit", "cursor="),
        ("/refused", "cursor="),
    ] {
        let name = query.trim_end_matches('=');
        let parameters = doc["paths"][path]["get"]["parameters"]
            .as_array()
            .expect("parameters");
        let parameter = parameters
            .iter()
            .find(|p| p["name"] == name)
            .expect("documented");
        assert_eq!(parameter["schema"]["minLength"], 1, "{path} {name}");
        let (status, _) = call(&app, Method::GET, &format!("{path}?{query}"), None).await;
        assert_eq!(status, 400, "{path}?{query}");
    }
}

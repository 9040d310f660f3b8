//! A fake Salesforce org on loopback, as its REST API documents itself: the OAuth token endpoint
//! (client credentials; `invalid_client` for a wrong secret) and `GET /services/data/vXX.X/query`
//! with a SOQL `CreatedDate` window, batches followed by `nextRecordsUrl` (batch size a knob;
//! Salesforce's default is 2,000), 401 `INVALID_SESSION_ID` for an expired token, 403
//! `REQUEST_LIMIT_EXCEEDED`, 503s, `Sforce-Limit-Info` on every answer, and request counts.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};

use soql::Soql;

mod soql;

pub const SF_CLIENT_ID: &str = "3MVG9fake.consumer.key.for.tallyfy.bridge";
pub const SF_CLIENT_SECRET: &str = "FAKE0CONSUMER0SECRET0A1B2C3D4E5F6";
/// Salesforce's own default and largest batch.
pub const DEFAULT_BATCH: usize = 2000;

struct State {
    /// Contacts as the org holds them: field API name → value, `CreatedDate` as Salesforce
    /// writes it, `Account` as `{"Name": …}` or absent.
    contacts: Vec<Map<String, Value>>,
    batch_size: usize,
    /// Tokens the org accepts now.
    valid_tokens: HashSet<String>,
    issued: u32,
    /// Query locators handed out.
    locators: u32,
    /// Expire every token once this many more queries have been answered.
    expire_after: Option<u32>,
    /// The next this many queries answer 403 `REQUEST_LIMIT_EXCEEDED` (with this Retry-After).
    over_limit: u32,
    over_limit_retry_after: Option<u64>,
    /// The next this many queries answer 503.
    unavailable: u32,
    /// Query locator → the records still to come.
    cursors: HashMap<String, Vec<Value>>,
    api_used: u64,
    api_limit: u64,
    token_requests: u32,
    /// Every query request (first batches and locators), as path and query.
    query_requests: Vec<String>,
    /// The SOQL of every first batch, decoded.
    soql: Vec<String>,
}

#[derive(Clone)]
pub struct FakeSalesforce {
    pub base_url: String,
    state: Arc<Mutex<State>>,
}

/// The vendor paths this fake answers.
fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/services/oauth2/token", web::post().to(token))
        .route("/services/data/{version}/query", web::get().to(query))
        .route(
            "/services/data/{version}/query/{locator}",
            web::get().to(more),
        );
}

impl FakeSalesforce {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State {
            contacts: Vec::new(),
            batch_size: DEFAULT_BATCH,
            valid_tokens: HashSet::new(),
            issued: 0,
            locators: 0,
            expire_after: None,
            over_limit: 0,
            over_limit_retry_after: None,
            unavailable: 0,
            cursors: HashMap::new(),
            api_used: 0,
            api_limit: 15_000,
            token_requests: 0,
            query_requests: Vec::new(),
            soql: Vec::new(),
        }));
        let base_url = crate::helpers::serve_fake(state.clone(), routes);
        Self { base_url, state }
    }

    /// A Contact created at `created` (RFC 3339) with `fields` (`Email`, `OwnerId`, …;
    /// `"Account": {"Name": …}` for its Account).
    pub fn add_contact(&self, id: &str, created: &str, fields: Value) {
        let created = DateTime::parse_from_rfc3339(created).expect("an RFC 3339 time");
        let mut record = match fields {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        record.insert("Id".into(), json!(id));
        record.insert(
            "CreatedDate".into(),
            json!(
                created
                    .with_timezone(&Utc)
                    .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
                    .to_string()
            ),
        );
        self.lock().contacts.push(record);
    }

    pub fn set_batch_size(&self, size: usize) {
        self.lock().batch_size = size;
    }

    /// Every token issued so far stops working (Salesforce's session timeout, or a revocation)
    /// after `queries` more query answers.
    pub fn expire_tokens_after(&self, queries: u32) {
        let mut state = self.lock();
        if queries == 0 {
            state.valid_tokens.clear();
        } else {
            state.expire_after = Some(queries);
        }
    }

    pub fn exceed_limit(&self, queries: u32, retry_after: Option<u64>) {
        let mut state = self.lock();
        state.over_limit = queries;
        state.over_limit_retry_after = retry_after;
    }

    pub fn unavailable_next(&self, queries: u32) {
        self.lock().unavailable = queries;
    }

    pub fn token_requests(&self) -> u32 {
        self.lock().token_requests
    }

    pub fn query_requests(&self) -> Vec<String> {
        self.lock().query_requests.clone()
    }

    pub fn soql(&self) -> Vec<String> {
        self.lock().soql.clone()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("fake Salesforce state")
    }
}

fn errors(code: &str, message: &str) -> Value {
    json!([{"message": message, "errorCode": code}])
}

/// `POST /services/oauth2/token`: `grant_type=client_credentials` with the connected app's
/// consumer key and secret, form-encoded.
async fn token(
    form: web::Form<HashMap<String, String>>,
    state: web::Data<Mutex<State>>,
) -> HttpResponse {
    let mut state = state.lock().expect("state");
    state.token_requests += 1;
    let field = |name: &str| form.get(name).map(String::as_str);
    if field("grant_type") != Some("client_credentials") {
        return HttpResponse::BadRequest().json(json!({"error": "unsupported_grant_type",
            "error_description": "grant type not supported"}));
    }
    if field("client_id") != Some(SF_CLIENT_ID) || field("client_secret") != Some(SF_CLIENT_SECRET)
    {
        return HttpResponse::BadRequest().json(
            json!({"error": "invalid_client", "error_description": "invalid client credentials"}),
        );
    }
    state.issued += 1;
    let token = format!("00D5e000000AbCd!AQ4AQFake{}", state.issued);
    state.valid_tokens.insert(token.clone());
    HttpResponse::Ok().json(json!({
        "access_token": token,
        "signature": "nUFHwtfIGLKDTHcLWmDBG8frv0t+HQGl/iCZFIQUarE=",
        "scope": "api",
        "instance_url": "https://fake.my.salesforce.com",
        "id": "https://login.salesforce.com/id/00D5e000000AbCdEAF/005Hn00000IntegIAH",
        "token_type": "Bearer",
        "issued_at": "1678833535086",
    }))
}

/// `GET /services/data/{version}/query?q=SELECT … FROM Contact WHERE CreatedDate >= … AND
/// CreatedDate < … ORDER BY CreatedDate`: the first batch, and a locator for the rest.
async fn query(request: HttpRequest, state: web::Data<Mutex<State>>) -> HttpResponse {
    let mut state = state.lock().expect("state");
    if let Some(refused) = admit(&request, &mut state) {
        return refused;
    }
    let q = web::Query::<HashMap<String, String>>::from_query(request.query_string())
        .ok()
        .and_then(|query| query.get("q").cloned())
        .unwrap_or_default();
    state.soql.push(q.clone());
    let Some(soql) = Soql::parse(&q) else {
        return answered(&mut state, HttpResponse::BadRequest())
            .json(errors("MALFORMED_QUERY", "unexpected token"));
    };
    let mut records: Vec<&Map<String, Value>> = state
        .contacts
        .iter()
        .filter(|record| soql.includes(record))
        .collect();
    records.sort_by_key(|record| created(record));
    let records: Vec<Value> = records.into_iter().map(|r| soql.project(r)).collect();
    let version = request
        .match_info()
        .get("version")
        .unwrap_or_default()
        .to_owned();
    let total = records.len();
    state.locators += 1;
    let locator = format!("01gFAKE{:06}", state.locators);
    batch(&mut state, records, total, &version, &locator, 0)
}

/// `GET /services/data/{version}/query/{locator}-{offset}`: the next batch.
async fn more(request: HttpRequest, state: web::Data<Mutex<State>>) -> HttpResponse {
    let mut state = state.lock().expect("state");
    if let Some(refused) = admit(&request, &mut state) {
        return refused;
    }
    let version = request
        .match_info()
        .get("version")
        .unwrap_or_default()
        .to_owned();
    let named = request.match_info().get("locator").unwrap_or_default();
    let Some((locator, offset)) = named
        .rsplit_once('-')
        .and_then(|(l, o)| Some((l.to_owned(), o.parse::<usize>().ok()?)))
    else {
        return answered(&mut state, HttpResponse::BadRequest())
            .json(errors("INVALID_QUERY_LOCATOR", "invalid query locator"));
    };
    let Some(rest) = state.cursors.remove(&locator) else {
        return answered(&mut state, HttpResponse::BadRequest())
            .json(errors("INVALID_QUERY_LOCATOR", "invalid query locator"));
    };
    let total = offset + rest.len();
    batch(&mut state, rest, total, &version, &locator, offset)
}

/// Up to `batch_size` of `records`; the rest kept under `locator` for `nextRecordsUrl`.
fn batch(
    state: &mut State,
    mut records: Vec<Value>,
    total: usize,
    version: &str,
    locator: &str,
    offset: usize,
) -> HttpResponse {
    let size = state.batch_size.clamp(1, DEFAULT_BATCH);
    let rest = if records.len() > size {
        records.split_off(size)
    } else {
        Vec::new()
    };
    let mut body = json!({"totalSize": total, "done": rest.is_empty(), "records": records});
    if !rest.is_empty() {
        let next = offset + size;
        body["nextRecordsUrl"] = json!(format!("/services/data/{version}/query/{locator}-{next}"));
        state.cursors.insert(locator.to_owned(), rest);
    }
    answered(state, HttpResponse::Ok()).json(body)
}

/// The bearer token, the limit and the 503s, in the order Salesforce meets them; `Some` is the
/// refusal. Every admitted query counts against the org's daily limit.
fn admit(request: &HttpRequest, state: &mut State) -> Option<HttpResponse> {
    let target = match request.query_string() {
        "" => request.path().to_owned(),
        query => format!("{}?{query}", request.path()),
    };
    state.query_requests.push(target);
    let bearer = request
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if !bearer.is_some_and(|token| state.valid_tokens.contains(token)) {
        return Some(
            HttpResponse::Unauthorized()
                .insert_header(("WWW-Authenticate", "Token"))
                .json(errors("INVALID_SESSION_ID", "Session expired or invalid")),
        );
    }
    if state.unavailable > 0 {
        state.unavailable -= 1;
        return Some(HttpResponse::ServiceUnavailable().body("Server Unavailable"));
    }
    if state.over_limit > 0 {
        state.over_limit -= 1;
        let mut refused = HttpResponse::Forbidden();
        if let Some(secs) = state.over_limit_retry_after {
            refused.insert_header(("Retry-After", secs.to_string()));
        }
        let used = state.api_limit;
        state.api_used = used;
        return Some(answered(state, refused).json(errors(
            "REQUEST_LIMIT_EXCEEDED",
            "TotalRequests Limit exceeded.",
        )));
    }
    state.api_used += 1;
    if let Some(left) = state.expire_after.as_mut() {
        *left -= 1;
        if *left == 0 {
            state.expire_after = None;
            state.valid_tokens.clear();
        }
    }
    None
}

/// The answer with `Sforce-Limit-Info`, as every REST answer carries.
fn answered(
    state: &mut State,
    mut builder: actix_web::HttpResponseBuilder,
) -> actix_web::HttpResponseBuilder {
    builder.insert_header((
        "Sforce-Limit-Info",
        format!("api-usage={}/{}", state.api_used, state.api_limit),
    ));
    builder
}

/// A record's `CreatedDate`.
fn created(record: &Map<String, Value>) -> DateTime<Utc> {
    record
        .get("CreatedDate")
        .and_then(Value::as_str)
        .and_then(|s| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z").ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

//! Pipedrive webhooks, v1 (`added.person`, `updated.person`) and v2 (`create.person`,
//! `change.person`): HTTP Basic auth as set on the webhook, one event per request, any 2xx
//! counts as delivered.

mod person;
mod update;

use actix_web::http::header::{HeaderValue, WWW_AUTHENTICATE};
use actix_web::{HttpRequest, HttpResponse};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::{Adapter, IngestError, Item, Report, json_body, json_reply, refused};
use crate::configuration::{OwnerMembers, PipedriveSettings};
use crate::http_auth::{basic_credentials, secrets_match};
use person::{Reading, person_event};

pub const SOURCE: &str = "pipedrive";

pub struct Pipedrive {
    /// `username:password`, as Basic auth carries it.
    credentials: SecretString,
    /// An API token is configured: the worker can read an organisation's name.
    reads_orgs: bool,
    /// Pipedrive owner → Tallyfy member, for the guest's `associated_members`.
    owners: OwnerMembers,
}

impl Pipedrive {
    pub fn from_settings(settings: &PipedriveSettings) -> Option<Self> {
        let (user, password) = (settings.username.as_ref()?, settings.password.as_ref()?);
        Some(Self {
            credentials: format!("{user}:{}", password.expose_secret()).into(),
            reads_orgs: settings.api_token.is_some(),
            owners: settings.owner_members.clone(),
        })
    }

    fn authenticate(&self, request: &HttpRequest) -> Result<(), &'static str> {
        let presented = basic_credentials(request.headers()).ok_or("no HTTP Basic credentials")?;
        if secrets_match(&presented, self.credentials.expose_secret().as_bytes()) {
            Ok(())
        } else {
            Err("the HTTP Basic credentials do not match")
        }
    }
}

impl Adapter for Pipedrive {
    fn receive(&self, request: &HttpRequest, body: &[u8]) -> Result<Vec<Item>, IngestError> {
        self.authenticate(request)
            .map_err(|reason| refused(SOURCE, reason))?;
        let Value::Object(body) = json_body(request, body)? else {
            return Err(IngestError::MalformedJson {
                message: "body must be a JSON object".into(),
            });
        };
        let reading = Reading {
            reads_orgs: self.reads_orgs,
            owners: &self.owners,
        };
        Ok(vec![person_event(&body, reading)?])
    }

    fn reply(&self, outcome: Result<Report, IngestError>) -> HttpResponse {
        let challenge = matches!(outcome, Err(IngestError::Unauthorized));
        let mut response = json_reply(outcome);
        if challenge {
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tallyfy-bridge\""),
            );
        }
        response
    }
}

/// Pipedrive's webhook username, as settings give it: HTTP Basic joins the pair with `:`, so
/// a username holding one could never match. The reason, for the key's error line.
pub fn check_username(username: &str) -> Result<(), &'static str> {
    if username.contains(':') {
        return Err("must not contain ':' (HTTP Basic auth cannot carry it)");
    }
    Ok(())
}

//! `GET /refused`: the CRM items the bridge did not queue (no email, an invalid one, a contact
//! the CRM says has none), newest first, filtered by source, reason and time, a page at a time.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::page::{BadParam, Cursor, Page, PageRequest, parse_time};
use super::{OpsState, bad_param, bad_request, internal, refuse};

/// Which refusals to list; every filter is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefusedFilter {
    pub source: Option<String>,
    pub reason: Option<String>,
    /// Refused at or after (ms), inclusive.
    pub since: Option<i64>,
    /// Refused before (ms), exclusive.
    pub until: Option<i64>,
}

/// One refused item: where to find it in its CRM and why, never its contact data.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct RefusedView {
    pub id: i64,
    pub source: String,
    pub event_id: Option<String>,
    pub record_id: Option<String>,
    pub notification_id: Option<String>,
    pub reason: String,
    pub field: String,
    /// The outbox row, when the worker refused it after reading the CRM record.
    pub outbox_id: Option<i64>,
    #[serde(serialize_with = "crate::time::serialize_ms")]
    #[schema(value_type = String, format = DateTime)]
    pub refused_at: i64,
}

/// The query string as sent; an unknown or repeated parameter is refused (a mistyped filter
/// would otherwise list everything).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Params {
    source: Option<String>,
    reason: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

impl Params {
    pub(crate) fn parse(self) -> Result<(RefusedFilter, PageRequest), BadParam> {
        let page = PageRequest::parse(self.limit.as_deref(), self.cursor.as_deref())?;
        let time = |field, text: Option<String>| text.map(|t| parse_time(field, &t)).transpose();
        let filter = RefusedFilter {
            source: self.source,
            reason: self.reason,
            since: time("since", self.since)?,
            until: time("until", self.until)?,
        };
        Ok((filter, page))
    }
}

/// The CRM items the bridge did not queue, newest first.
#[utoipa::path(get, path = "/refused", operation_id = "list_refused", tag = "admin", security(("admin_token" = [])),
    params(
        ("source" = Option<String>, Query, description = "`pipedrive`, `hubspot` or `salesforce`"),
        ("reason" = Option<String>, Query, description = "The refusal's code, e.g. `invalid_email`"),
        ("since" = Option<String>, Query, format = DateTime, description = "RFC 3339, inclusive, on `refused_at`"),
        ("until" = Option<String>, Query, format = DateTime, description = "RFC 3339, exclusive, on `refused_at`"),
        ("limit" = Option<u32>, Query, minimum = 1, maximum = 500, description = "Items per page, 1 to 500, default 50"),
        ("cursor" = Option<String>, Query, min_length = 1, description = "The `next_cursor` of the page before"),
    ),
    responses(
        (status = 200, body = super::page::Page<RefusedView>),
        (status = 400, description = "A bad, unknown or repeated parameter (`bad_request`, `field` names it)", body = crate::api_error::ErrorBody),
        (status = 401, description = "Wrong or missing admin token", body = crate::api_error::ErrorBody),
        (status = 404, description = "No admin token configured", body = crate::api_error::ErrorBody),
        (status = 500, description = "The database could not be read", body = crate::api_error::ErrorBody),
    ))]
pub async fn list(request: HttpRequest, state: web::Data<OpsState>) -> HttpResponse {
    if let Some(refusal) = refuse(&request, &state) {
        return refusal;
    }
    let params = match web::Query::<Params>::from_query(request.query_string()) {
        Ok(params) => params.into_inner(),
        Err(error) => {
            // serde names the parameter in backquotes: "unknown field `sorce`, expected …".
            let message = error.to_string();
            let field = message.split('`').nth(1).map(str::to_owned);
            return bad_request(message, field.as_deref());
        }
    };
    let (filter, page) = match params.parse() {
        Ok(parsed) => parsed,
        Err(bad) => return bad_param(bad),
    };
    match state
        .store
        .refused(&filter, page.after, page.limit + 1)
        .await
    {
        Ok(rows) => HttpResponse::Ok().json(Page::from_rows(rows, page.limit, |row| Cursor {
            at: row.refused_at,
            id: row.id,
        })),
        Err(error) => internal(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(query: &str) -> Result<(RefusedFilter, PageRequest), BadParam> {
        web::Query::<Params>::from_query(query)
            .expect("known parameters")
            .into_inner()
            .parse()
    }

    #[test]
    fn filters_and_paging_are_read_from_the_query() {
        let (filter, page) =
            parse("source=hubspot&reason=invalid_email&since=1970-01-01T00:00:01Z&limit=2")
                .expect("valid");
        assert_eq!(
            filter,
            RefusedFilter {
                source: Some("hubspot".into()),
                reason: Some("invalid_email".into()),
                since: Some(1000),
                until: None,
            }
        );
        assert_eq!((page.limit, page.after), (2, None));
        for (query, field) in [
            ("until=now", "until"),
            ("since=2026", "since"),
            ("limit=0", "limit"),
            ("cursor=nope", "cursor"),
        ] {
            assert_eq!(parse(query).map_err(|e| e.field), Err(field), "{query}");
        }
    }
}

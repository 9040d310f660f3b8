//! Reading what a page was sent: a form body or a query string as (name, value) pairs, the way
//! the admin API reads its query strings.

use actix_web::web;

use crate::ops::page::BadParam;

pub(super) type Pairs = Vec<(String, String)>;

/// A form body (`application/x-www-form-urlencoded`), percent-decoded.
pub(super) fn parse(body: &[u8]) -> Result<Pairs, BadParam> {
    let text =
        std::str::from_utf8(body).map_err(|_| BadParam::new("body", "the form is not UTF-8"))?;
    web::Query::<Pairs>::from_query(text)
        .map(web::Query::into_inner)
        .map_err(|_| BadParam::new("body", "the body is not a form"))
}

/// The first value of `name`.
pub(super) fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

/// `path?name=value&…`, each part percent-encoded.
pub(super) fn link(path: &str, pairs: &[(&str, String)]) -> String {
    use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
    if pairs.is_empty() {
        return path.to_owned();
    }
    let query: Vec<String> = pairs
        .iter()
        .map(|(name, value)| {
            format!(
                "{}={}",
                utf8_percent_encode(name, NON_ALPHANUMERIC),
                utf8_percent_encode(value, NON_ALPHANUMERIC)
            )
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_round_trips_through_a_link() {
        let url = link(
            "/x",
            &[("email", "a+b@c.d".into()), ("state", "failed".into())],
        );
        assert_eq!(url, "/x?email=a%2Bb%40c%2Ed&state=failed");
        let query = url.split_once('?').map(|(_, q)| q).unwrap_or_default();
        let pairs = parse(query.as_bytes()).expect("form");
        assert_eq!(field(&pairs, "email"), Some("a+b@c.d"));
        assert_eq!(field(&pairs, "nope"), None);
        assert_eq!(parse(b"\xff").map_err(|e| e.field), Err("body"));
    }
}

/// The forms the console's POSTs carry, for the OpenAPI document (the handlers read the pairs
/// with [`parse`] so that each problem names its field).
pub(super) mod schema {
    #![allow(dead_code)]

    /// `POST /console/login`.
    #[derive(utoipa::ToSchema)]
    pub struct LoginForm {
        /// The admin token.
        token: String,
        /// The login form's CSRF token (it matches the `bridge_login_csrf` cookie).
        csrf: String,
    }

    /// `POST /console/logout` and the row actions.
    #[derive(utoipa::ToSchema)]
    pub struct CsrfForm {
        /// The session's CSRF token.
        csrf: String,
    }

    /// `POST /console/bulk`: what the confirmation page carries.
    #[derive(utoipa::ToSchema)]
    pub struct BulkForm {
        csrf: String,
        /// `retry` or `cancel`.
        action: String,
        state: String,
        source: Option<String>,
        email: Option<String>,
        since: Option<String>,
        until: Option<String>,
    }
}

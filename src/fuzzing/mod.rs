//! Entry points for the fuzz targets in `fuzz/` (built only with cargo-fuzz's `--cfg fuzzing`):
//! each feeds one hostile input to the real parser and checks what must hold beyond "no panic".
//!
//! Inputs that carry headers are read as a tiny HTTP message, so seeds stay readable fixtures:
//! a first line of switches, `name: value` lines, a blank line, then the body (docs/fuzzing.md).

mod answers;
mod crms;
mod webhooks;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::test::TestRequest;

use crate::configuration::Secret;
use crate::domain::{Guest, NAME_MAX, NormalisedEmail, PHONE_MAX, lookup_key};

pub use answers::{retry_after, tallyfy_response};
pub use crms::{hubspot, pipedrive, salesforce};
pub use webhooks::{canonical_contact, standard_webhooks};

/// A secret setting, held to the rules of one loaded from the environment.
pub(super) fn secret<const N: usize>(value: &str) -> Secret<N> {
    value.parse().expect("a valid secret")
}

/// A fuzz input read as `switches\nname: value\n…\n\nbody`.
pub(super) struct Message<'a> {
    pub(super) switches: Vec<String>,
    pub(super) headers: Vec<(&'a [u8], &'a [u8])>,
    pub(super) body: &'a [u8],
}

impl<'a> Message<'a> {
    pub(super) fn read(data: &'a [u8]) -> Self {
        let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
            Some(at) => (&data[..at], &data[at + 2..]),
            None => (data, &data[data.len()..]),
        };
        let mut lines = head.split(|b| *b == b'\n');
        let switches = String::from_utf8_lossy(lines.next().unwrap_or_default())
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        let headers = lines
            .filter_map(|line| {
                let colon = line.iter().position(|b| *b == b':')?;
                Some((&line[..colon], line[colon + 1..].trim_ascii_start()))
            })
            .collect();
        Self {
            switches,
            headers,
            body,
        }
    }

    pub(super) fn has(&self, switch: &str) -> bool {
        self.switches.iter().any(|s| s == switch)
    }

    /// The headers that are valid HTTP, in order (a repeated name is appended, not replaced).
    fn valid_headers(&self) -> impl Iterator<Item = (HeaderName, HeaderValue)> + '_ {
        self.headers.iter().filter_map(|(name, value)| {
            Some((
                HeaderName::from_bytes(name).ok()?,
                HeaderValue::from_bytes(value).ok()?,
            ))
        })
    }

    pub(super) fn header_map(&self) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in self.valid_headers() {
            map.append(name, value);
        }
        map
    }

    pub(super) fn request(&self) -> TestRequest {
        self.valid_headers()
            .fold(TestRequest::post(), |request, header| {
                request.append_header(header)
            })
    }
}

/// Trimmed, not empty, at most `max` characters.
pub(super) fn assert_tidy(value: &str, max: usize) {
    assert!(!value.is_empty() && value.trim() == value, "{value:?}");
    assert!(value.chars().count() <= max, "{value:?} over {max}");
}

/// A guest keyed by `key`: the key is its email's identity and an identity itself, and every
/// field is trimmed and within Tallyfy's limits.
pub(super) fn assert_guest(guest: &Guest, key: &str) {
    assert_eq!(lookup_key(&guest.email), key);
    assert_eq!(lookup_key(key), key);
    assert!(
        NormalisedEmail::parse(&guest.email).is_ok(),
        "{:?}",
        guest.email
    );
    assert_eq!(
        NormalisedEmail::parse(key)
            .as_ref()
            .map(NormalisedEmail::as_str),
        Ok(key),
        "the key {key:?} fails the email rule"
    );
    assert_tidy(&guest.email, usize::MAX);
    for (value, max) in [
        (&guest.first_name, NAME_MAX),
        (&guest.last_name, NAME_MAX),
        (&guest.company_name, NAME_MAX),
        (&guest.opportunity_name, NAME_MAX),
        (&guest.phone_1, PHONE_MAX),
        (&guest.phone_2, PHONE_MAX),
    ] {
        if let Some(value) = value {
            assert_tidy(value, max);
        }
    }
}

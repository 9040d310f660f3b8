//! Credentials on an HTTP request, for every endpoint that checks them: the one `Authorization`
//! parser, and the one constant-time comparison of a presented secret with the expected one.

use actix_web::http::header::{AUTHORIZATION, HeaderMap};
use base64::Engine;
use subtle::ConstantTimeEq;

/// Constant-time comparison that also hides the secret's length: digests are compared, not the
/// secrets themselves.
pub fn secrets_match(presented: &[u8], expected: &[u8]) -> bool {
    let (presented, expected) = (
        hmac_sha256::Hash::hash(presented),
        hmac_sha256::Hash::hash(expected),
    );
    bool::from(presented.ct_eq(&expected))
}

/// The scheme and the credentials of the `Authorization` header (RFC 9110 §11.4: the scheme,
/// then spaces, then the credentials; surrounding whitespace is not part of either).
fn authorization(headers: &HeaderMap) -> Option<(&str, &str)> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, credentials) = value.split_once(' ')?;
    Some((scheme, credentials.trim()))
}

/// The credentials of `scheme` (compared case-insensitively, as RFC 9110 says schemes are).
fn credentials<'h>(headers: &'h HeaderMap, scheme: &str) -> Option<&'h str> {
    authorization(headers)
        .filter(|(presented, _)| presented.eq_ignore_ascii_case(scheme))
        .map(|(_, credentials)| credentials)
}

/// The token of `Authorization: Bearer <token>`.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    credentials(headers, "bearer")
}

/// HTTP Basic credentials, decoded: the bytes of `user:password`.
pub fn basic_credentials(headers: &HeaderMap) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(credentials(headers, "basic")?)
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(value).expect("header"));
        headers
    }

    #[test]
    fn the_scheme_is_case_insensitive_and_the_token_is_what_follows_it() {
        for value in [
            "Bearer tok",
            "bearer tok",
            "BEARER tok",
            "Bearer  tok ",
            " Bearer tok",
        ] {
            assert_eq!(bearer(&with(value)), Some("tok"), "{value:?}");
        }
        for value in ["Bearertok", "Bearer", "Token tok", "Basic dG9r", ""] {
            assert_eq!(bearer(&with(value)), None, "{value:?}");
        }
        assert_eq!(bearer(&HeaderMap::new()), None);
    }

    #[test]
    fn basic_credentials_are_decoded_whatever_the_scheme_case() {
        let encoded = base64::engine::general_purpose::STANDARD.encode("crm:s3cret");
        for scheme in ["Basic", "basic"] {
            assert_eq!(
                basic_credentials(&with(&format!("{scheme} {encoded}"))).as_deref(),
                Some(b"crm:s3cret".as_slice())
            );
        }
        assert_eq!(basic_credentials(&with("Basic not*base64")), None);
        assert_eq!(basic_credentials(&with(&format!("Bearer {encoded}"))), None);
    }

    #[test]
    fn secrets_match_only_when_equal_whatever_the_lengths() {
        assert!(secrets_match(b"s3cret", b"s3cret"));
        assert!(!secrets_match(b"s3cre", b"s3cret"));
        assert!(!secrets_match(b"", b"s3cret"));
        assert!(!secrets_match(b"s3cret-and-more", b"s3cret"));
    }
}

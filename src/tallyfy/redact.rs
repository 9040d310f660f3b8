//! Tallyfy's token scrubbed from a response body before anything is cut from it or logged: a
//! body that echoes the request must not carry the secret into an error.

/// `body` with every occurrence of `secret` replaced by `[REDACTED]`.
pub(super) fn redact(body: Vec<u8>, secret: &str) -> Vec<u8> {
    let secret = secret.as_bytes();
    let find = |haystack: &[u8]| haystack.windows(secret.len()).position(|w| w == secret);
    if secret.is_empty() || find(&body).is_none() {
        return body;
    }
    let mut redacted = Vec::with_capacity(body.len());
    let mut rest = body.as_slice();
    while let Some(at) = find(rest) {
        redacted.extend_from_slice(&rest[..at]);
        redacted.extend_from_slice(b"[REDACTED]");
        rest = &rest[at + secret.len()..];
    }
    redacted.extend_from_slice(rest);
    redacted
}

#[cfg(test)]
mod tests {
    use reqwest::StatusCode;
    use reqwest::header::HeaderMap;

    use super::*;
    use crate::tallyfy::error;
    use crate::upstream;

    const TOKEN: &str = "tok_VERY_SECRET_value_42";

    #[test]
    fn a_token_the_excerpt_would_cut_in_half_is_redacted_first() {
        // Scrubbing the excerpt alone missed a token straddling its 200th character.
        let body = format!("{}{TOKEN} and {TOKEN}", "x".repeat(190)).into_bytes();
        let redacted = redact(body, TOKEN);
        let failure =
            upstream::classify(StatusCode::BAD_REQUEST, &HeaderMap::new(), &redacted, None)
                .expect_err("a 400");
        let text = error::from_failure(failure, &redacted).to_string();
        assert!(!text.contains(&TOKEN[..6]), "{text}");
        assert!(text.contains("xxx[REDACT"), "{text}");
        assert_eq!(
            redact(b"a tok tok".to_vec(), "tok"),
            b"a [REDACTED] [REDACTED]"
        );
        assert_eq!(redact(b"as is".to_vec(), ""), b"as is");
    }
}

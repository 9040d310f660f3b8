//! When a personal access token that is a JWT expires: its payload's `exp`, read without checking
//! the signature (Tallyfy checks that; the bridge only wants to warn in time).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

/// The `exp` claim of `token` in Unix milliseconds, when the token is a JWT that has one.
pub(crate) fn expires_at_ms(token: &str) -> Option<i64> {
    let mut parts = token.trim().split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?;
    let secs = exp.as_i64().or_else(|| exp.as_f64().map(|f| f as i64))?;
    secs.checked_mul(1000).filter(|ms| *ms > 0)
}

#[cfg(test)]
pub(crate) fn make(exp_secs: i64) -> String {
    let part = |json: &str| URL_SAFE_NO_PAD.encode(json);
    format!(
        "{}.{}.{}",
        part(r#"{"typ":"JWT","alg":"RS256"}"#),
        part(&format!(r#"{{"aud":"3","sub":"12","exp":{exp_secs}}}"#)),
        part("signature")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exp_claim_of_a_jwt_is_read_in_milliseconds() {
        assert_eq!(expires_at_ms(&make(1_800_000_000)), Some(1_800_000_000_000));
        let padded = format!(
            "a.{}==.b",
            URL_SAFE_NO_PAD.encode(r#"{"exp":1800000000.5}"#)
        );
        assert_eq!(expires_at_ms(&padded), Some(1_800_000_000_000));
    }

    #[test]
    fn anything_else_has_no_known_expiry() {
        for token in [
            "opaque-token-value",
            "a.b",
            "a.b.c.d",
            "a.!!!.c",
            &format!("a.{}.c", URL_SAFE_NO_PAD.encode(r#"{"sub":"1"}"#)),
            &format!("a.{}.c", URL_SAFE_NO_PAD.encode(r#"{"exp":"soon"}"#)),
            &format!("a.{}.c", URL_SAFE_NO_PAD.encode("not json")),
        ] {
            assert_eq!(expires_at_ms(token), None, "{token}");
        }
    }
}

//! `Retry-After` parsing: delta-seconds or an HTTP date, as an upstream API may send either.
//! Pure (the caller passes `now`) so it is testable without a clock.

use std::time::{Duration, SystemTime};

/// Returns how long to wait, or `None` if the value is neither form.
/// A date in the past means "now" (zero), not an error.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // Overlong digit strings overflow u64: treat them as garbage rather than guessing.
        return value.parse::<u64>().ok().map(Duration::from_secs);
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch_plus(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn delta_seconds() {
        let now = SystemTime::now();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
    }

    #[test]
    fn http_date_in_the_future_is_relative_to_now() {
        // Wed, 21 Oct 2015 07:28:00 GMT == 1445412480
        let now = epoch_plus(1_445_412_480 - 90);
        let got = parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now);
        assert_eq!(got, Some(Duration::from_secs(90)));
    }

    #[test]
    fn http_date_in_the_past_is_zero() {
        let now = epoch_plus(1_445_412_480 + 3600);
        let got = parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now);
        assert_eq!(got, Some(Duration::ZERO));
    }

    #[test]
    fn garbage_is_none() {
        let now = SystemTime::now();
        for value in [
            "",
            "soon",
            "-5",
            "1.5",
            "99999999999999999999999",
            "Wed, 99 Oct",
        ] {
            assert_eq!(parse_retry_after(value, now), None, "{value:?}");
        }
    }
}

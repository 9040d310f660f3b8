//! Text kept from an upstream answer: one line, a bounded number of characters, so a body or an
//! error chain never floods a row's error column or a log line.

/// Longest excerpt of a response body kept in an error.
pub const EXCERPT_CHARS: usize = 200;

/// At most `EXCERPT_CHARS` characters of a body, on one line.
pub fn excerpt(body: &[u8]) -> String {
    truncate(&one_line(&String::from_utf8_lossy(body)), EXCERPT_CHARS)
}

/// Runs of whitespace (newlines included) as one space.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The first `max` characters, with `…` when something was cut.
pub fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_excerpt_is_one_line_of_at_most_the_limit_plus_an_ellipsis() {
        let body = format!("<html>\n{}\n</html>", "é".repeat(500));
        let got = excerpt(body.as_bytes());
        assert!(!got.contains('\n'));
        assert_eq!(got.chars().count(), EXCERPT_CHARS + 1);
        assert!(got.starts_with("<html> éé") && got.ends_with('…'), "{got}");
        assert_eq!(excerpt(b"  short\r\n body "), "short body");
    }
}

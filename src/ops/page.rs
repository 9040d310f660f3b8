//! Keyset paging and the query parameters every admin list shares: a page is the `limit` rows
//! after an opaque `cursor`, newest first by (time, id), so a page costs the same however many
//! rows come before it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::DateTime;
use serde::Serialize;

/// Rows per page when the caller does not say.
pub const DEFAULT_LIMIT: usize = 50;
/// The most rows one page may ask for.
pub const MAX_LIMIT: usize = 500;

/// A bad query parameter: the field it names and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadParam {
    pub field: &'static str,
    pub message: String,
}

impl BadParam {
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Where the next page starts: after the row with this time and id (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub at: i64,
    pub id: i64,
}

impl Cursor {
    pub fn encode(self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}", self.at, self.id))
    }

    pub fn decode(text: &str) -> Result<Self, BadParam> {
        let bad = || BadParam::new("cursor", "cursor is not one this bridge gave out");
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| bad())?;
        let text = std::str::from_utf8(&bytes).map_err(|_| bad())?;
        let (at, id) = text.split_once(':').ok_or_else(bad)?;
        Ok(Self {
            at: at.parse().map_err(|_| bad())?,
            id: id.parse().map_err(|_| bad())?,
        })
    }
}

/// `limit` and `cursor`, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub limit: usize,
    pub after: Option<Cursor>,
}

impl PageRequest {
    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> Result<Self, BadParam> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| BadParam::new("limit", format!("limit must be 1 to {MAX_LIMIT}")))?,
        };
        let after = cursor.map(Cursor::decode).transpose()?;
        Ok(Self { limit, after })
    }
}

/// One page of a list: the items and, when more may follow, the cursor of the next page.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The `cursor` of the next page; null on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// From up to `limit + 1` rows fetched: the extra one only says another page exists.
    pub fn from_rows(mut rows: Vec<T>, limit: usize, key: impl Fn(&T) -> Cursor) -> Self {
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if more {
            rows.last().map(|row| key(row).encode())
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }
}

/// An RFC 3339 time parameter (`since`, `until`) as ms since the epoch.
pub fn parse_time(field: &'static str, text: &str) -> Result<i64, BadParam> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            BadParam::new(
                field,
                format!("{field} must be an RFC 3339 time, e.g. 2026-12-01T09:30:00Z"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_a_forged_one_is_refused() {
        let cursor = Cursor {
            at: 1_764_580_000_123,
            id: 42,
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
        for forged in ["", "!!", "MTIz", &URL_SAFE_NO_PAD.encode("1:x")] {
            assert_eq!(Cursor::decode(forged).map_err(|e| e.field), Err("cursor"));
        }
    }

    #[test]
    fn limit_is_bounded() {
        assert_eq!(PageRequest::parse(None, None).map(|p| p.limit), Ok(50));
        assert_eq!(
            PageRequest::parse(Some("500"), None).map(|p| p.limit),
            Ok(500)
        );
        for bad in ["0", "501", "-1", "ten"] {
            assert_eq!(
                PageRequest::parse(Some(bad), None).map_err(|e| e.field),
                Err("limit")
            );
        }
    }

    #[test]
    fn a_page_has_a_next_cursor_only_when_more_rows_follow() {
        let key = |n: &i64| Cursor { at: *n, id: *n };
        let page = Page::from_rows(vec![5, 4, 3], 2, key);
        assert_eq!(page.items, vec![5, 4]);
        assert_eq!(page.next_cursor, Some(key(&4).encode()));
        let last = Page::from_rows(vec![2, 1], 2, key);
        assert_eq!(last.next_cursor, None);
    }

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(parse_time("since", "1970-01-01T00:00:01Z"), Ok(1000));
        assert_eq!(
            parse_time("until", "yesterday").map_err(|e| e.field),
            Err("until")
        );
    }
}

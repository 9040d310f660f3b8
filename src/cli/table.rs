//! The command line's tables: the API's JSON as aligned columns, a long error cut short, a
//! missing value as `-`, and the cursor of the next page under a list.

use serde_json::Value;

/// The widest a cell may be; longer text (an error) is cut with `…`.
const CELL_MAX: usize = 60;

/// A value as one line of text, whole.
fn one_line(value: &Value) -> String {
    let text = match value {
        Value::Null => "-".to_owned(),
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A value as one cell of a table.
fn cell(value: &Value) -> String {
    let one_line = one_line(value);
    if one_line.chars().count() > CELL_MAX {
        let cut: String = one_line.chars().take(CELL_MAX - 1).collect();
        format!("{cut}…")
    } else {
        one_line
    }
}

/// Columns padded to their widest cell, two spaces apart, the last one unpadded.
pub(super) fn render(headers: &[&str], rows: &[Vec<String>]) -> String {
    let width = |i: usize| {
        rows.iter()
            .map(|row| row[i].chars().count())
            .chain([headers[i].len()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..headers.len()).map(width).collect();
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, text) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(text);
            } else {
                out.push_str(text);
                out.push_str(&" ".repeat(widths[i] - text.chars().count() + 2));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// The cells of `item` for `keys`, in order.
fn cells(item: &Value, keys: &[&str]) -> Vec<String> {
    keys.iter().map(|key| cell(&item[*key])).collect()
}

const DELIVERY_KEYS: [&str; 7] = [
    "id",
    "state",
    "source",
    "email",
    "attempts",
    "received_at",
    "last_error",
];
const DELIVERY_HEADERS: [&str; 7] = [
    "ID",
    "STATE",
    "SOURCE",
    "EMAIL",
    "ATTEMPTS",
    "RECEIVED",
    "LAST ERROR",
];

fn delivery_row(item: &Value) -> Vec<String> {
    let mut row = cells(item, &DELIVERY_KEYS);
    // A row whose CRM record is not read yet has no email: show what it names instead.
    if item["email"].is_null() && !item["crm_record"].is_null() {
        row[3] = format!("record {}", cell(&item["crm_record"]));
    }
    row
}

/// A page's items and, when another page follows, how to ask for it.
fn page(answer: &Value, headers: &[&str], row: impl Fn(&Value) -> Vec<String>) -> String {
    let items = answer["items"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    if items.is_empty() {
        return "(none)\n".into();
    }
    let rows: Vec<Vec<String>> = items.iter().map(row).collect();
    let mut out = render(headers, &rows);
    if let Some(cursor) = answer["next_cursor"].as_str() {
        out.push_str(&format!("more: --cursor {cursor}\n"));
    }
    out
}

/// `GET /deliveries`.
pub(super) fn deliveries(answer: &Value) -> String {
    page(answer, &DELIVERY_HEADERS, delivery_row)
}

/// `{"delivery": …}` from a retry or cancel of one row.
pub(super) fn one_delivery(answer: &Value) -> String {
    render(&DELIVERY_HEADERS, &[delivery_row(&answer["delivery"])])
}

/// `GET /deliveries/{id}`: every field of the row, then its attempt log.
pub(super) fn delivery_with_attempts(answer: &Value) -> String {
    let mut out = String::new();
    if let Some(fields) = answer["delivery"].as_object() {
        let width = fields.keys().map(String::len).max().unwrap_or(0);
        for (key, value) in fields {
            // One field per line: the whole error fits, nothing is cut.
            out.push_str(&format!("{key:width$}  {}\n", one_line(value)));
        }
    }
    let attempts = answer["attempts"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    if !attempts.is_empty() {
        let keys = [
            "attempt",
            "started_at",
            "duration_ms",
            "http_status",
            "outcome",
            "error",
        ];
        let rows: Vec<Vec<String>> = attempts.iter().map(|a| cells(a, &keys)).collect();
        out.push('\n');
        out.push_str(&render(
            &["ATTEMPT", "STARTED", "MS", "HTTP", "OUTCOME", "ERROR"],
            &rows,
        ));
    }
    out
}

/// `{"moved", "more"}` from a bulk change.
pub(super) fn moved(answer: &Value) -> String {
    let moved = cell(&answer["moved"]);
    if answer["more"].as_bool() == Some(true) {
        format!("moved {moved}; more rows match: run it again\n")
    } else {
        format!("moved {moved}\n")
    }
}

/// `GET /refused`.
pub(super) fn refused(answer: &Value) -> String {
    let keys = [
        "id",
        "source",
        "record_id",
        "event_id",
        "reason",
        "field",
        "outbox_id",
        "refused_at",
    ];
    page(
        answer,
        &[
            "ID", "SOURCE", "RECORD", "EVENT", "REASON", "FIELD", "OUTBOX", "REFUSED",
        ],
        |item| cells(item, &keys),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn columns_line_up_whatever_the_cell_widths() {
        let table = render(
            &["ID", "STATE"],
            &[
                vec!["7".into(), "failed".into()],
                vec!["1234".into(), "-".into()],
            ],
        );
        assert_eq!(table, "ID    STATE\n7     failed\n1234  -\n");
    }

    #[test]
    fn a_delivery_page_shows_its_rows_and_the_next_cursor() {
        let answer = json!({
            "items": [
                {"id": 12, "state": "failed", "source": "hubspot", "email": "a@example.com",
                 "attempts": 15, "received_at": "2026-12-01T10:00:00.000Z",
                 "last_error": format!("gave up after 15 attempts: {}", "x".repeat(100))},
                {"id": 9, "state": "queued", "source": "hubspot", "email": null,
                 "crm_record": "hubspot:501", "attempts": 0,
                 "received_at": "2026-12-01T09:00:00.000Z", "last_error": null},
            ],
            "next_cursor": "MTIzOjk",
        });
        let text = deliveries(&answer);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("ID  STATE   SOURCE   EMAIL"), "{text}");
        assert!(
            lines[1].starts_with("12  failed  hubspot  a@example.com"),
            "{text}"
        );
        assert!(
            lines[2].starts_with("9   queued  hubspot  record hubspot:501"),
            "{text}"
        );
        assert!(
            lines[1].ends_with('…') && lines[1].chars().count() < 160,
            "{text}"
        );
        assert_eq!(lines[3], "more: --cursor MTIzOjk");
        // Every column starts at the same place on every line.
        let at = |line: &str, word: &str| line.find(word).expect(word);
        assert_eq!(at(lines[0], "RECEIVED"), at(lines[1], "2026-12-01T10"));
        assert_eq!(at(lines[0], "RECEIVED"), at(lines[2], "2026-12-01T09"));
        assert_eq!(
            deliveries(&json!({"items": [], "next_cursor": null})),
            "(none)\n"
        );
    }

    #[test]
    fn refused_items_render_with_their_record_and_reason() {
        let answer = json!({
            "items": [{"id": 3, "source": "salesforce", "event_id": null,
                       "record_id": "003XX0000004DcZ", "notification_id": "04l",
                       "reason": "missing_email", "field": "Email", "outbox_id": null,
                       "refused_at": "2026-12-01T10:00:00.000Z"}],
            "next_cursor": null,
        });
        let text = refused(&answer);
        assert_eq!(
            text,
            "ID  SOURCE      RECORD           EVENT  REASON         FIELD  OUTBOX  REFUSED\n\
             3   salesforce  003XX0000004DcZ  -      missing_email  Email  -       2026-12-01T10:00:00.000Z\n"
        );
    }

    #[test]
    fn a_bulk_answer_says_whether_to_run_again() {
        assert_eq!(
            moved(&json!({"moved": 2, "more": true})),
            "moved 2; more rows match: run it again\n"
        );
        assert_eq!(moved(&json!({"moved": 0, "more": false})), "moved 0\n");
    }
}

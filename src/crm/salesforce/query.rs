//! The SOQL query of a reconcile window and its answer: Contacts by `CreatedDate`, a batch at a
//! time (up to 2,000), the next batch at `nextRecordsUrl` until `done`.

use chrono::{DateTime, Utc};
use reqwest::Url;
use serde_json::Value;

use super::contact::{self, EMAIL, FIELDS};
use crate::configuration::OwnerMembers;
use crate::crm::FetchError;
use crate::crm::listing::{Listed, Window};
use crate::domain::event::StoredEvent;

/// `SELECT … FROM Contact WHERE CreatedDate >= since AND CreatedDate < until ORDER BY
/// CreatedDate`, selecting `company` (a field API name, or `Account.Name`).
pub(super) fn soql(window: Window, company: &str) -> String {
    format!(
        "SELECT Id, {}, CreatedDate, {company} FROM Contact WHERE CreatedDate >= {} AND CreatedDate < {} ORDER BY CreatedDate",
        FIELDS.join(", "),
        datetime_literal(window.since),
        datetime_literal(window.until),
    )
}

/// A SOQL dateTime literal (`2026-12-02T16:33:39Z`, unquoted) of `ms`, down to its second: SOQL
/// takes none finer, and flooring both bounds keeps back-to-back windows from overlapping or
/// leaving a gap.
pub(super) fn datetime_literal(ms: i64) -> String {
    let at = DateTime::<Utc>::from_timestamp(ms.div_euclid(1000), 0).unwrap_or_default();
    at.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// One batch of a query's answer.
#[derive(Debug)]
pub(super) struct Batch {
    pub records: Vec<Value>,
    /// Where the next batch is; `None` once `done`.
    pub next: Option<String>,
}

pub(super) fn batch(body: &[u8]) -> Result<Batch, FetchError> {
    let malformed = |what: &str| FetchError::Transient {
        status: None,
        detail: format!("the query's answer {what}"),
    };
    let mut value: Value = serde_json::from_slice(body).map_err(|_| malformed("is not JSON"))?;
    let done = value
        .get("done")
        .and_then(Value::as_bool)
        .ok_or_else(|| malformed("has no done"))?;
    let next = match done {
        true => None,
        false => Some(
            value
                .get("nextRecordsUrl")
                .and_then(Value::as_str)
                .ok_or_else(|| malformed("is not done and has no nextRecordsUrl"))?
                .to_owned(),
        ),
    };
    let records = match value.get_mut("records").map(Value::take) {
        Some(Value::Array(records)) => records,
        _ => return Err(malformed("has no records")),
    };
    Ok(Batch { records, next })
}

/// The next batch's URL: a path on the instance under `/services/data/`, so the token never goes
/// to another host, whatever an answer says.
pub(super) fn next_url(instance: &Url, next: &str) -> Result<Url, FetchError> {
    let refused = || FetchError::Transient {
        status: None,
        detail: "the query's nextRecordsUrl is not a query path on the instance".into(),
    };
    if !next.starts_with("/services/data/") {
        return Err(refused());
    }
    let url = instance.join(next).map_err(|_| refused())?;
    // Checked again once joined: `..` segments are resolved by then.
    if url.origin() != instance.origin() || !url.path().starts_with("/services/data/") {
        return Err(refused());
    }
    Ok(url)
}

pub(super) fn repeated_locator() -> FetchError {
    FetchError::Transient {
        status: None,
        detail: "the query's nextRecordsUrl names the batch just read".into(),
    }
}

/// A query record as a listed contact, drafted like an outbound message's Contact.
pub(super) fn listed(
    record: &Value,
    company: &str,
    owners: &OwnerMembers,
) -> Result<Listed, FetchError> {
    let missing = |field: &str| FetchError::Transient {
        status: None,
        detail: format!("a listed Contact has no {field}"),
    };
    let id = text(record, "Id").ok_or_else(|| missing("Id"))?;
    let created = text(record, "CreatedDate").ok_or_else(|| missing("CreatedDate"))?;
    // `2026-12-02T16:33:39.000+0000`, as the REST API writes a dateTime.
    let created_at = DateTime::parse_from_str(&created, "%Y-%m-%dT%H:%M:%S%.f%z")
        .map_err(|_| missing("readable CreatedDate"))?
        .timestamp_millis();
    let drafted = contact::contact_draft(|field| text(record, field), Some(company), owners);
    Ok(Listed::from_draft(
        id,
        created_at,
        drafted,
        EMAIL,
        |guest| StoredEvent::Guest { guest },
    ))
}

/// A field's text by API name, following a relationship for `Account.Name` (a Contact without
/// an Account has `"Account": null`).
fn text(record: &Value, field: &str) -> Option<String> {
    let value = field
        .split('.')
        .try_fold(record, |value, name| value.get(name))?;
    value.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crm::listing::ListedContact;
    use serde_json::json;

    #[test]
    fn the_query_bounds_are_the_windows_seconds() {
        // 2026-12-02T16:33:39.999Z and 2026-12-02T17:00:00.000Z
        let window = Window {
            since: 1_796_229_219_999,
            until: 1_796_230_800_000,
        };
        assert_eq!(
            soql(window, "Account.Name"),
            "SELECT Id, Email, FirstName, LastName, Phone, OwnerId, CreatedDate, Account.Name FROM Contact WHERE CreatedDate >= 2026-12-02T16:33:39Z AND CreatedDate < 2026-12-02T17:00:00Z ORDER BY CreatedDate"
        );
        assert_eq!(datetime_literal(-1), "1969-12-31T23:59:59Z");
    }

    #[test]
    fn a_batch_names_its_successor_until_done() {
        let body = json!({"totalSize": 3, "done": false,
            "nextRecordsUrl": "/services/data/v62.0/query/01gRO0000016PIAYA2-2000",
            "records": [{"Id": "003A"}]});
        let first = batch(body.to_string().as_bytes()).expect("batch");
        assert_eq!(first.records.len(), 1);
        assert_eq!(
            first.next.as_deref(),
            Some("/services/data/v62.0/query/01gRO0000016PIAYA2-2000")
        );
        let last = batch(br#"{"totalSize":3,"done":true,"records":[]}"#).expect("batch");
        assert!(last.next.is_none());
        assert!(batch(br#"{"done":false,"records":[]}"#).is_err());
    }

    #[test]
    fn a_next_url_off_the_instance_is_refused() {
        let instance = Url::parse("https://acme.my.salesforce.com").expect("url");
        assert_eq!(
            next_url(&instance, "/services/data/v62.0/query/01g-2000")
                .expect("ours")
                .as_str(),
            "https://acme.my.salesforce.com/services/data/v62.0/query/01g-2000"
        );
        for bad in [
            "https://evil.example/services/data/v62.0/query/x",
            "//evil.example/services/data/x",
            "/services/oauth2/token",
            "/services/data/../../x",
        ] {
            assert!(next_url(&instance, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_record_becomes_a_guest_with_its_account_and_owner() {
        let record = json!({
            "attributes": {"type": "Contact", "url": "/services/data/v62.0/sobjects/Contact/003A"},
            "Id": "003A", "Email": "Ada@Example.com", "FirstName": "Ada", "LastName": null,
            "Phone": "+44 20 7946 0000", "OwnerId": "005Hn00000ABCdeIAH",
            "CreatedDate": "2026-12-02T16:33:39.000+0000",
            "Account": {"attributes": {"type": "Account"}, "Name": "Analytical Engines"}});
        let owners = OwnerMembers::from([("005Hn00000ABCdeIAH", 9)]);
        let listed = listed(&record, "Account.Name", &owners).expect("listed");
        assert_eq!(listed.record_id, "003A");
        assert_eq!(listed.created_at, 1_796_229_219_000);
        let ListedContact::Guest { email, event } = listed.contact else {
            panic!("a guest")
        };
        assert_eq!(email, "ada@example.com");
        let StoredEvent::Guest { guest } = event else {
            panic!("a guest event")
        };
        assert_eq!(guest.company_name.as_deref(), Some("Analytical Engines"));
        assert_eq!(guest.last_name, None);
        assert_eq!(guest.associated_members, Some(vec![9]));
    }

    #[test]
    fn a_record_without_an_email_or_account_is_refused_by_its_email_field() {
        let record = json!({"Id": "003B", "Email": null, "Account": null,
                            "CreatedDate": "2026-12-02T16:33:39.000+0000"});
        let listed = listed(&record, "Account.Name", &OwnerMembers::default()).expect("listed");
        assert_eq!(
            listed.contact,
            ListedContact::Refused {
                field: "Email".into(),
                code: "missing_field"
            }
        );
        assert!(
            super::listed(
                &json!({"Id": "003C"}),
                "Account.Name",
                &OwnerMembers::default()
            )
            .is_err()
        );
    }
}

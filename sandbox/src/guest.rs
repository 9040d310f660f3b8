//! A stored sandbox guest and its renderings: Tallyfy's `{"data": {...}}` JSON for the guest API
//! and the `SandboxGuest` summary (with create counts) for tests and `/_sandbox/guests`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::validate::NewGuest;

/// What tests and demos see: one row per guest with its create counters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxGuest {
    pub id: String,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone_1: Option<String>,
    pub company_name: Option<String>,
    pub created_at: String,
    /// Creates that actually created this guest. Emails are unique, so this is 1.
    pub creates: u32,
    /// Later creates for the same email (linked or rejected). The bridge should cause none.
    pub duplicate_attempts: u32,
}

pub(crate) struct GuestRecord {
    pub id: String,
    /// Render `id` as a JSON number (current docs) rather than a string (older docs).
    pub numeric_id: bool,
    pub guest: NewGuest,
    pub created_at: String,
    pub creates: u32,
    pub duplicate_attempts: u32,
}

impl GuestRecord {
    pub fn new(id: String, numeric_id: bool, guest: NewGuest) -> Self {
        Self {
            id,
            numeric_id,
            guest,
            created_at: tallyfy_timestamp(SystemTime::now()),
            creates: 1,
            duplicate_attempts: 0,
        }
    }

    pub fn summary(&self) -> SandboxGuest {
        SandboxGuest {
            id: self.id.clone(),
            email: self.guest.email.clone(),
            first_name: self.guest.first_name.clone(),
            last_name: self.guest.last_name.clone(),
            phone_1: self.guest.phone_1.clone(),
            company_name: self.guest.company_name.clone(),
            created_at: self.created_at.clone(),
            creates: self.creates,
            duplicate_attempts: self.duplicate_attempts,
        }
    }

    /// The guest object as Tallyfy documents it (without the `data` wrapper).
    pub fn to_json(&self, org_id: &str) -> Value {
        let id = match self.id.parse::<u64>() {
            Ok(n) if self.numeric_id => json!(n),
            _ => json!(self.id),
        };
        let g = &self.guest;
        let members = if g.associated_members.is_empty() {
            Value::Null
        } else {
            json!(g.associated_members)
        };
        json!({
            "id": id,
            "email": g.email,
            "first_name": g.first_name,
            "last_name": g.last_name,
            "last_accessed_at": null,
            "created_at": self.created_at,
            "deleted_at": null,
            "link": format!("https://sandbox.invalid/{org_id}/guests/{}", self.id),
            "details": {
                "status": "active",
                "phone_1": g.phone_1,
                "phone_2": g.phone_2,
                "timezone": g.timezone,
                "company_name": g.company_name,
                "associated_members": members,
            },
        })
    }
}

/// `2025-01-15 10:30:00` in UTC, one of the two timestamp styles Tallyfy uses.
pub(crate) fn tallyfy_timestamp(at: SystemTime) -> String {
    let secs = at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Gregorian date of a day count since 1970-01-01 (400-year-era arithmetic).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468; // shift the epoch to 0000-03-01
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153; // month starting from March
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_use_tallyfy_format() {
        let at = UNIX_EPOCH + Duration::from_secs(1_736_937_000); // 2025-01-15 10:30:00 UTC
        assert_eq!(tallyfy_timestamp(at), "2025-01-15 10:30:00");
        assert_eq!(tallyfy_timestamp(UNIX_EPOCH), "1970-01-01 00:00:00");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(tallyfy_timestamp(leap), "2000-02-29 00:00:00");
    }

    #[test]
    fn ids_render_in_both_styles() {
        let guest = NewGuest {
            email: "a@b.co".into(),
            ..NewGuest::default()
        };
        let numeric = GuestRecord::new("1001".into(), true, guest.clone());
        assert_eq!(numeric.to_json("o")["id"], json!(1001));
        assert_eq!(
            numeric.to_json("o")["details"]["associated_members"],
            Value::Null
        );
        let text = GuestRecord::new("guest_code_1".into(), false, guest);
        assert_eq!(text.to_json("o")["id"], json!("guest_code_1"));
    }
}

//! Create-guest body validation with Tallyfy's documented limits; errors are collected per
//! field like Laravel does. Unknown fields (e.g. `phone`) are ignored, as Tallyfy does.

use std::collections::BTreeMap;

use serde_json::Value;

/// A create body that passed validation; the email is normalised (trimmed, lowercased).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct NewGuest {
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub company_name: Option<String>,
    pub phone_1: Option<String>,
    pub phone_2: Option<String>,
    pub timezone: Option<String>,
    pub associated_members: Vec<u64>,
}

/// field name → messages, as in Laravel's `errors` object.
pub(crate) type FieldErrors = BTreeMap<String, Vec<String>>;

/// Guests are keyed by this: Tallyfy treats emails case-insensitively.
pub(crate) fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

pub(crate) fn validate(body: &Value) -> Result<NewGuest, FieldErrors> {
    let mut errors = FieldErrors::new();
    let mut add = |field: &str, message: String| {
        errors.entry(field.to_owned()).or_default().push(message);
    };
    let field = |name: &str| body.get(name).filter(|v| !v.is_null());

    let email = match field("email") {
        None => {
            add("email", "The email field is required.".to_owned());
            String::new()
        }
        Some(Value::String(s)) if s.trim().is_empty() => {
            add("email", "The email field is required.".to_owned());
            String::new()
        }
        Some(Value::String(s)) => {
            if !plausible_email(s.trim()) {
                add(
                    "email",
                    "The email must be a valid email address.".to_owned(),
                );
            }
            normalise_email(s)
        }
        Some(_) => {
            add("email", "The email must be a string.".to_owned());
            String::new()
        }
    };

    let mut text = |name: &str, max: usize| -> Option<String> {
        let label = name.replace('_', " ");
        match field(name)? {
            Value::String(s) if s.chars().count() > max => {
                add(
                    name,
                    format!("The {label} may not be greater than {max} characters."),
                );
                None
            }
            Value::String(s) => Some(s.clone()),
            _ => {
                add(name, format!("The {label} must be a string."));
                None
            }
        }
    };
    let first_name = text("first_name", 200);
    let last_name = text("last_name", 200);
    let company_name = text("company_name", 200);
    let phone_1 = text("phone_1", 20);
    let phone_2 = text("phone_2", 20);
    let timezone = text("timezone", 64);
    if timezone
        .as_deref()
        .is_some_and(|tz| tz.trim().is_empty() || tz.contains(char::is_whitespace))
    {
        add("timezone", "The timezone must be a valid zone.".to_owned());
    }

    let mut associated_members = Vec::new();
    match field("associated_members") {
        None => {}
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                match item.as_u64() {
                    Some(id) => associated_members.push(id),
                    None => add(
                        &format!("associated_members.{i}"),
                        format!("The associated_members.{i} must be an integer."),
                    ),
                }
            }
        }
        Some(_) => add(
            "associated_members",
            "The associated members must be an array.".to_owned(),
        ),
    }

    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(NewGuest {
        email,
        first_name,
        last_name,
        company_name,
        phone_1,
        phone_2,
        timezone,
        associated_members,
    })
}

/// Syntax only (no DNS): one `@`, a sane local part, a dotted domain with an alphabetic TLD.
fn plausible_email(email: &str) -> bool {
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.chars().count() >= 2 && tld.chars().all(char::is_alphabetic));
    local_ok && domain_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_documented_fields_and_ignores_unknown_ones() {
        let body = json!({"email": " Jane+x@Example.COM ", "first_name": "Jane",
            "phone_1": "+33 1 23 45 67 89", "timezone": "Europe/Paris",
            "associated_members": [3, 4], "phone": "ignored"});
        let guest = validate(&body).unwrap();
        assert_eq!(guest.email, "jane+x@example.com");
        assert_eq!(guest.associated_members, vec![3, 4]);
        assert_eq!(guest.timezone.as_deref(), Some("Europe/Paris"));
    }

    #[test]
    fn names_each_bad_field() {
        let body = json!({"email": "nope", "first_name": "x".repeat(201),
            "phone_2": "1".repeat(21), "timezone": "", "associated_members": [1, "two"]});
        let errors = validate(&body).unwrap_err();
        let fields: Vec<&str> = errors.keys().map(String::as_str).collect();
        assert_eq!(
            fields,
            [
                "associated_members.1",
                "email",
                "first_name",
                "phone_2",
                "timezone"
            ]
        );
        assert_eq!(
            errors["first_name"],
            ["The first name may not be greater than 200 characters."]
        );
    }

    #[test]
    fn email_is_required_and_checked() {
        assert!(validate(&json!({})).unwrap_err().contains_key("email"));
        assert!(validate(&json!({"email": null})).is_err());
        for bad in [
            "a@b",
            "a@@b.com",
            "@b.com",
            "a b@c.com",
            "a@-b.com",
            "a..b@c.com",
        ] {
            assert!(validate(&json!({ "email": bad })).is_err(), "{bad}");
        }
        let ok = validate(&json!({"email": "a@b.co", "first_name": "x".repeat(200)}));
        assert!(ok.is_ok());
    }
}

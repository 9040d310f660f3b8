//! A contact as a CRM described it, and the one way it becomes a guest: the email must be
//! usable, optional fields that break Tallyfy's limits are left out and reported.

use super::email::NormalisedEmail;
use super::guest::{Guest, NAME_MAX, PHONE_MAX, has_control};

/// A contact as a CRM described it, before Tallyfy's limits are applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContactDraft {
    pub email: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub company: Option<String>,
}

/// A field that could not be used, named as the guest field it would have filled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldProblem {
    pub field: &'static str,
    pub code: &'static str,
    pub message: String,
}

/// A guest made from a draft, with the optional fields that had to be left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drafted {
    pub normalised_email: NormalisedEmail,
    pub guest: Guest,
    pub dropped: Vec<FieldProblem>,
}

impl ContactDraft {
    /// Fails only on the email, without which there is no guest; a name, phone or company that
    /// Tallyfy would refuse is dropped (and listed) rather than losing the whole contact.
    pub fn into_guest(self) -> Result<Drafted, FieldProblem> {
        let email = clean(self.email).ok_or_else(|| FieldProblem {
            field: "email",
            code: "missing_field",
            message: "the contact has no email address".into(),
        })?;
        let normalised_email = NormalisedEmail::parse(&email).map_err(|message| FieldProblem {
            field: "email",
            code: "invalid_email",
            message,
        })?;
        let mut dropped = Vec::new();
        let mut limited = |field: &'static str, value: Option<String>, max: usize| {
            let value = clean(value)?;
            if has_control(&value) {
                dropped.push(FieldProblem {
                    field,
                    code: "control_character",
                    message: format!("{field} contains a control character: left out"),
                });
                return None;
            }
            if value.chars().count() > max {
                dropped.push(FieldProblem {
                    field,
                    code: "too_long",
                    message: format!("{field} is longer than Tallyfy's {max} characters: left out"),
                });
                return None;
            }
            Some(value)
        };
        let guest = Guest {
            first_name: limited("first_name", self.first_name, NAME_MAX),
            last_name: limited("last_name", self.last_name, NAME_MAX),
            phone_1: limited("phone_1", self.phone, PHONE_MAX),
            company_name: limited("company_name", self.company, NAME_MAX),
            ..Guest::new(email)
        };
        Ok(Drafted {
            normalised_email,
            guest,
            dropped,
        })
    }
}

/// Trimmed; empty means not set.
fn clean(value: Option<String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft(email: &str) -> ContactDraft {
        ContactDraft {
            email: Some(email.into()),
            ..ContactDraft::default()
        }
    }

    #[test]
    fn a_usable_contact_becomes_a_guest_with_a_normalised_identity() {
        let drafted = ContactDraft {
            first_name: Some(" Ada ".into()),
            last_name: Some(String::new()),
            phone: Some("+44 20 7946 0000".into()),
            company: Some("Analytical Engines".into()),
            ..draft(" Ada@Example.com ")
        }
        .into_guest()
        .expect("valid");
        assert_eq!(drafted.normalised_email.as_str(), "ada@example.com");
        assert_eq!(drafted.guest.email, "Ada@Example.com");
        assert_eq!(drafted.guest.first_name.as_deref(), Some("Ada"));
        assert_eq!(drafted.guest.last_name, None);
        assert_eq!(drafted.guest.phone_1.as_deref(), Some("+44 20 7946 0000"));
        assert_eq!(
            drafted.guest.company_name.as_deref(),
            Some("Analytical Engines")
        );
        assert!(drafted.dropped.is_empty());
    }

    #[test]
    fn a_missing_or_unusable_email_refuses_the_contact() {
        for (email, code) in [
            (None, "missing_field"),
            (Some("  "), "missing_field"),
            (Some("not-an-email"), "invalid_email"),
            (Some("a@localhost"), "invalid_email"),
            (Some("Name <a@example.com>"), "invalid_email"),
            (Some("\"quoted local\"@example.com"), "invalid_email"),
            (Some("a\u{0}@example.com"), "invalid_email"),
        ] {
            let problem = ContactDraft {
                email: email.map(str::to_owned),
                ..ContactDraft::default()
            }
            .into_guest()
            .expect_err("refused");
            assert_eq!((problem.field, problem.code), ("email", code), "{email:?}");
        }
    }

    #[test]
    fn fields_over_tallyfys_limits_are_left_out_and_listed() {
        let drafted = ContactDraft {
            phone: Some("+1 (415) 555-0100 ext. 1234".into()),
            first_name: Some("é".repeat(NAME_MAX)),
            company: Some("x".repeat(NAME_MAX + 1)),
            ..draft("a@example.com")
        }
        .into_guest()
        .expect("email is fine");
        assert_eq!(drafted.guest.phone_1, None);
        assert_eq!(drafted.guest.company_name, None);
        assert_eq!(
            drafted.guest.first_name.map(|n| n.chars().count()),
            Some(NAME_MAX)
        );
        let dropped: Vec<&str> = drafted.dropped.iter().map(|p| p.field).collect();
        assert_eq!(dropped, ["phone_1", "company_name"]);
    }

    #[test]
    fn the_identity_has_the_domain_in_ascii_and_the_guest_keeps_the_email_as_sent() {
        let drafted = draft("Ada@Bücher.de").into_guest().expect("valid");
        assert_eq!(drafted.normalised_email.as_str(), "ada@xn--bcher-kva.de");
        assert_eq!(drafted.guest.email, "Ada@Bücher.de");
    }

    #[test]
    fn fields_with_control_characters_are_left_out_and_listed() {
        let drafted = ContactDraft {
            first_name: Some("Ada\u{0}".into()),
            last_name: Some("Love\nlace".into()),
            phone: Some("+1\u{7f}555".into()),
            company: Some("Engines\u{85}Ltd".into()),
            ..draft("a@example.com")
        }
        .into_guest()
        .expect("email is fine");
        assert_eq!(drafted.guest, Guest::new("a@example.com"));
        let dropped: Vec<(&str, &str)> =
            drafted.dropped.iter().map(|p| (p.field, p.code)).collect();
        assert_eq!(
            dropped,
            ["first_name", "last_name", "phone_1", "company_name"]
                .map(|f| (f, "control_character"))
        );
    }
}

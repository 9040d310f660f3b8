//! The one rule for a guest's email: the plain `local@domain` forms Tallyfy can take, and the
//! single identity (lowercase, ASCII domain) each mailbox is keyed, looked up and sent by.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest address SMTP carries (RFC 5321 §4.5.3.1.3: a 256-octet path minus its brackets),
/// in octets of the ASCII form.
pub const EMAIL_MAX: usize = 254;
/// RFC 5321 §4.5.3.1.1.
pub const LOCAL_MAX: usize = 64;

/// A mailbox's identity: only made by [`NormalisedEmail::parse`], so holding one proves the
/// address passed the rule (and is in its lowercase, ASCII-domain form).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NormalisedEmail(String);

impl NormalisedEmail {
    /// The mailbox's identity, or why no guest can have this address (a message for the sender).
    ///
    /// Only an RFC 5322 addr-spec with a dot-atom local part and a DNS domain name is accepted:
    /// a display name, angle brackets, a quoted local part, comments, whitespace or a domain
    /// literal are all forms Tallyfy refuses ("must pass RFC/DNS validation"), so storing them
    /// would only make a row that fails later. The domain is mapped by IDNA (UTS #46) to its
    /// ASCII form, so `a@bücher.de` and `a@xn--bcher-kva.de` are one mailbox; that form is also
    /// what Tallyfy gets, since it is the DNS name Tallyfy validates and the one every later
    /// look-up uses.
    pub fn parse(email: &str) -> Result<Self, String> {
        let email = email.trim();
        let Some((local, domain)) = email.rsplit_once('@') else {
            return Err(
                "email must be a plain address such as name@example.com (no @ found)".into(),
            );
        };
        check_local(local)?;
        let domain = ascii_domain(domain)?;
        let identity = format!("{}@{domain}", local.to_ascii_lowercase());
        if identity.len() > EMAIL_MAX {
            return Err(format!(
                "email must be at most {EMAIL_MAX} octets (with its domain in ASCII form)"
            ));
        }
        Ok(Self(identity))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NormalisedEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<NormalisedEmail> for String {
    fn from(email: NormalisedEmail) -> Self {
        email.0
    }
}

impl TryFrom<String> for NormalisedEmail {
    type Error = String;

    fn try_from(email: String) -> Result<Self, String> {
        Self::parse(&email)
    }
}

/// What an operator's text names, for look-ups: its identity when it is an address, else its
/// trimmed lowercase form (which then matches nothing stored).
pub fn lookup_key(email: &str) -> String {
    NormalisedEmail::parse(email).map_or_else(|_| email.trim().to_lowercase(), String::from)
}

/// A dot-atom of RFC 5322 atext, ASCII only.
fn check_local(local: &str) -> Result<(), String> {
    const PLAIN: &str = "email must be a plain address such as name@example.com";
    if local.is_empty() {
        return Err(format!("{PLAIN}: the part before @ is empty"));
    }
    if !local.is_ascii() {
        // SMTPUTF8 mailboxes exist, but nothing says Tallyfy takes them: refuse them clearly
        // rather than store a row that fails at delivery.
        return Err(format!(
            "{PLAIN}: the part before @ must be ASCII (internationalised local parts are not accepted)"
        ));
    }
    if local.len() > LOCAL_MAX {
        return Err(format!(
            "the part of email before @ must be at most {LOCAL_MAX} characters"
        ));
    }
    let atext = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-/=?^_`{|}~".contains(&b);
    if local.split('.').any(|atom| atom.is_empty()) {
        return Err(format!(
            "{PLAIN}: the part before @ may not start or end with a dot or have two in a row"
        ));
    }
    if let Some(bad) = local.bytes().find(|&b| b != b'.' && !atext(b)) {
        let what = match bad {
            b'"' => "a quoted part".to_owned(),
            b'<' | b'>' => "angle brackets (a display name)".to_owned(),
            b'(' | b')' => "a comment".to_owned(),
            b if b.is_ascii_whitespace() => "whitespace".to_owned(),
            b if b.is_ascii_control() => "a control character".to_owned(),
            b => format!("{:?}", b as char),
        };
        return Err(format!("{PLAIN}: the part before @ contains {what}"));
    }
    Ok(())
}

/// The domain as IDNA's ASCII (A-label) form, lowercased: a DNS name of at least two labels,
/// not an IP address or a domain literal.
fn ascii_domain(domain: &str) -> Result<String, String> {
    if domain.starts_with('[') {
        return Err("email must have a domain name such as example.com, not an address".into());
    }
    // Strict: STD3 letters, digits and hyphens only, labels ≤ 63 and the name ≤ 253 octets.
    let ascii = idna::domain_to_ascii_strict(domain)
        .map_err(|_| "email's domain is not a valid domain name".to_owned())?;
    let tld = ascii.rsplit('.').next().unwrap_or_default();
    if !ascii.contains('.') || tld.bytes().all(|b| b.is_ascii_digit()) {
        return Err("email must have a domain name such as example.com".into());
    }
    Ok(ascii)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The identity as text, as the rule's callers store it.
    fn mailbox(email: &str) -> Result<String, String> {
        NormalisedEmail::parse(email).map(String::from)
    }

    #[test]
    fn plain_addresses_are_accepted_with_a_lowercase_identity() {
        for (email, identity) in [
            (" Ada@Example.com ", "ada@example.com"),
            (
                "first.o'brien+tag@mail.example.co.uk",
                "first.o'brien+tag@mail.example.co.uk",
            ),
            (
                "x!#$%&*/=?^_`{|}~-@example.io",
                "x!#$%&*/=?^_`{|}~-@example.io",
            ),
        ] {
            assert_eq!(mailbox(email).as_deref(), Ok(identity), "{email}");
        }
    }

    #[test]
    fn every_form_tallyfy_refuses_is_refused() {
        for email in [
            "Name <a@example.com>",
            "<a@example.com>",
            "\"quoted local\"@example.com",
            "\"a\"@example.com",
            "a(comment)@example.com",
            "a@example.com (comment)",
            "a b@example.com",
            "a@exa mple.com",
            "a\u{0}@example.com",
            "a@example.com\u{7f}",
            ".a@example.com",
            "a.@example.com",
            "a..b@example.com",
            "a@b@example.com",
            "@example.com",
            "a@",
            "a",
            "a@localhost",
            "a@[10.0.0.1]",
            "a@[IPv6:::1]",
            "a@10.0.0.1",
            "a@example.com.",
            "a@-example.com",
            "a@exa_mple.com",
            "a@example..com",
            "josé@example.com",
        ] {
            assert!(mailbox(email).is_err(), "{email:?} was accepted");
        }
    }

    #[test]
    fn the_smtp_length_limits_hold() {
        let local = "l".repeat(LOCAL_MAX);
        assert!(mailbox(&format!("{local}@example.com")).is_ok());
        assert!(mailbox(&format!("{local}l@example.com")).is_err());
        // 64 + 1 + 189 = 254 octets, then one more.
        let label = "d".repeat(60);
        let domain = |extra: &str| format!("{label}.{label}.{label}.{extra}com");
        let fits = format!("{local}@{}", domain(""));
        let fits = format!("{fits}{}", ".x".repeat((EMAIL_MAX - fits.len()) / 2));
        assert!(
            fits.len() <= EMAIL_MAX && fits.len() >= EMAIL_MAX - 1,
            "{}",
            fits.len()
        );
        assert!(mailbox(&fits).is_ok());
        assert!(mailbox(&format!("{fits}xyz")).is_err());
    }

    #[test]
    fn an_identity_is_always_an_address_the_rule_accepts() {
        // Found by fuzzing: `İ` (2 bytes) lowercases to `i̇` (3 bytes), so a 64-byte local part
        // used to become a 65-byte identity that failed the very rule it had passed.
        let local = format!("{}İ", "a".repeat(LOCAL_MAX - 2));
        assert_eq!(local.len(), LOCAL_MAX);
        assert!(mailbox(&format!("{local}@example.com")).is_err());
        for email in ["Ada.L@Example.COM", "x@BÜCHER.de"] {
            let identity = mailbox(email).expect("valid");
            assert_eq!(mailbox(&identity).as_deref(), Ok(identity.as_str()));
        }
    }

    #[test]
    fn a_unicode_domain_and_its_punycode_are_one_identity() {
        for email in [
            "a@bücher.de",
            "a@BÜCHER.de",
            "A@xn--bcher-kva.de",
            "a@XN--BCHER-KVA.DE",
        ] {
            assert_eq!(
                mailbox(email).as_deref(),
                Ok("a@xn--bcher-kva.de"),
                "{email}"
            );
        }
        assert_eq!(lookup_key("a@Bücher.de"), "a@xn--bcher-kva.de");
        // Punycode that does not decode is not a domain name.
        assert!(mailbox("a@xn--zz.de").is_err());
    }

    #[test]
    fn deserialising_goes_through_the_rule() {
        let email: NormalisedEmail = serde_json::from_str(r#"" Ada@Example.com""#).expect("valid");
        assert_eq!(email.as_str(), "ada@example.com");
        assert_eq!(
            serde_json::to_string(&email).expect("json"),
            r#""ada@example.com""#
        );
        assert!(serde_json::from_str::<NormalisedEmail>(r#""Name <a@example.com>""#).is_err());
        assert_eq!(lookup_key(" Not An Email "), "not an email");
    }
}

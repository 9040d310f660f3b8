//! A Salesforce Contact as a guest, one mapping for an outbound message's sObject and a REST
//! query's record alike: Email, names, Phone, the company field, and OwnerId as the member.

use crate::configuration::OwnerMembers;
use crate::domain::{ContactDraft, Drafted, FieldProblem};

/// The Contact's email field, named in a refusal.
pub const EMAIL: &str = "Email";
/// The fields a guest is made from besides `Id` and the company, by API name: what the outbound
/// message must send and the query selects.
pub const FIELDS: [&str; 5] = [EMAIL, "FirstName", "LastName", "Phone", "OwnerId"];
/// The company when no `company_field` is set: the REST API follows the Contact's Account, which
/// an outbound message (one object's fields) cannot.
pub const ACCOUNT_NAME: &str = "Account.Name";

/// The guest a Contact makes: `field` gives one field's text by API name (`company`, when
/// given, names the company's), and a listed `OwnerId` becomes the guest's associated member.
pub fn contact_draft(
    mut field: impl FnMut(&str) -> Option<String>,
    company: Option<&str>,
    owners: &OwnerMembers,
) -> Result<Drafted, FieldProblem> {
    let draft = ContactDraft {
        email: field(EMAIL),
        first_name: field("FirstName"),
        last_name: field("LastName"),
        phone: field("Phone"),
        company: company.and_then(&mut field),
    };
    let owner = field("OwnerId");
    let mut drafted = draft.into_guest()?;
    drafted.guest.associated_members = owner_members(owners, owner.as_deref());
    Ok(drafted)
}

/// Salesforce sends 18-character ids; an operator may have copied the 15-character form (the
/// first 15, case-sensitive) from a record's URL, or set an 18-character one from the
/// environment, whose keys arrive lowercased: the 18-character form is made to be unique
/// without case, so it is also looked up lowercased (the 15-character one never is).
fn owner_members(owners: &OwnerMembers, owner: Option<&str>) -> Option<Vec<u64>> {
    let owner = owner?.trim();
    let long = owner.len() == 18;
    owners
        .members(Some(owner))
        .or_else(|| owners.members(owner.get(..15).filter(|_| long)))
        .or_else(|| long.then(|| owners.members(Some(&owner.to_ascii_lowercase())))?)
}

/// A field API name as the query selects it and the message names its element: a letter, then
/// letters, digits and underscores (`Account_Name__c`). The reason, for the key's error line.
pub fn check_field_name(name: &str) -> Result<(), &'static str> {
    let mut chars = name.chars();
    let starts_well = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    if !starts_well || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') || name.len() > 80 {
        return Err(
            "must be a Contact field's API name: a letter, then letters, digits and '_' (e.g. Account_Name__c)",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn fields(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_fields_and_a_listed_owner_make_the_guest() {
        let mut record = fields(&[
            ("Email", "Ada@Example.com"),
            ("FirstName", "Ada"),
            ("Phone", "+44 20 7946 0000"),
            ("Account_Name__c", "Analytical Engines"),
            ("OwnerId", "005Hn00000ABCdeIAH"),
        ]);
        let owners = OwnerMembers::from([("005Hn00000ABCdeIAH", 42)]);
        let drafted =
            contact_draft(|f| record.remove(f), Some("Account_Name__c"), &owners).expect("a guest");
        let guest = drafted.guest;
        assert_eq!(drafted.normalised_email.as_str(), "ada@example.com");
        assert_eq!(guest.first_name.as_deref(), Some("Ada"));
        assert_eq!(guest.last_name, None);
        assert_eq!(guest.phone_1.as_deref(), Some("+44 20 7946 0000"));
        assert_eq!(guest.company_name.as_deref(), Some("Analytical Engines"));
        assert_eq!(guest.associated_members, Some(vec![42]));
    }

    #[test]
    fn an_owner_is_found_by_its_fifteen_character_id_and_an_unlisted_one_is_none() {
        let owners = OwnerMembers::from([("005Hn00000ABCde", 7)]);
        assert_eq!(
            owner_members(&owners, Some("005Hn00000ABCdeIAH")),
            Some(vec![7])
        );
        assert_eq!(owner_members(&owners, Some("005Hn00000ABCdf")), None);
        // Case matters in a 15-character id.
        assert_eq!(owner_members(&owners, Some("005hn00000abcdeIAH")), None);
        assert_eq!(owner_members(&owners, None), None);
        // An 18-character id set from the environment arrives lowercased.
        let from_env = OwnerMembers::from([("005hn00000abcdeiah", 8)]);
        assert_eq!(
            owner_members(&from_env, Some("005Hn00000ABCdeIAH")),
            Some(vec![8])
        );
        assert_eq!(owner_members(&from_env, Some("005Hn00000ABCde")), None);
    }

    #[test]
    fn without_a_company_field_no_company_is_read_and_no_email_is_a_refusal() {
        let mut record = fields(&[("Email", "a@example.com"), ("Account_Name__c", "AE")]);
        let drafted =
            contact_draft(|f| record.remove(f), None, &OwnerMembers::default()).expect("a guest");
        assert_eq!(drafted.guest.company_name, None);
        assert_eq!(drafted.guest.associated_members, None);
        let problem =
            contact_draft(|_| None, None, &OwnerMembers::default()).expect_err("no email");
        assert_eq!(problem.code, "missing_field");
    }

    #[test]
    fn a_company_field_must_be_an_api_name() {
        assert!(check_field_name("Account_Name__c").is_ok());
        for bad in ["", "1x", "Account.Name", "Name FROM User", "x'--"] {
            assert!(check_field_name(bad).is_err(), "{bad}");
        }
    }
}

//! A HubSpot contact's properties as the bridge reads them: one mapping for the worker's fetch
//! and the reconcile's search, so a contact becomes the same guest whichever way it came.

use serde_json::{Map, Value};

use crate::configuration::OwnerMembers;
use crate::domain::{ContactDraft, Drafted, FieldProblem};

/// The contact properties a guest is made from, the owner included.
pub(super) const PROPERTIES: [&str; 6] = [
    "email",
    "firstname",
    "lastname",
    "phone",
    "company",
    "hubspot_owner_id",
];

/// A contact as HubSpot gave it, with its owner already looked up in `owner_members`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubSpotContact {
    pub draft: ContactDraft,
    /// The Tallyfy member standing for the contact's owner, when the owner is mapped.
    pub associated_members: Option<Vec<u64>>,
}

impl HubSpotContact {
    /// From a contact's `properties` object; a null property is unset.
    pub(super) fn from_properties(properties: &Map<String, Value>, owners: &OwnerMembers) -> Self {
        let property = |name: &str| {
            properties
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        Self {
            draft: ContactDraft {
                email: property("email"),
                first_name: property("firstname"),
                last_name: property("lastname"),
                phone: property("phone"),
                company: property("company"),
            },
            associated_members: owners.members(property("hubspot_owner_id").as_deref()),
        }
    }

    /// The guest, associated with the owner's member; fails only on the email, as any draft.
    pub fn into_guest(self) -> Result<Drafted, FieldProblem> {
        let mut drafted = self.draft.into_guest()?;
        drafted.guest.associated_members = self.associated_members;
        Ok(drafted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn properties(value: Value) -> Map<String, Value> {
        value.as_object().cloned().expect("an object")
    }

    #[test]
    fn a_mapped_owner_becomes_the_guests_associated_member() {
        let owners = OwnerMembers::from([("801", 12)]);
        let owned = properties(json!({"email": "a@example.com", "hubspot_owner_id": "801"}));
        let guest = HubSpotContact::from_properties(&owned, &owners)
            .into_guest()
            .expect("a guest")
            .guest;
        assert_eq!(guest.associated_members, Some(vec![12]));

        for other in [json!("802"), json!(null), json!("")] {
            let contact = properties(json!({"email": "a@example.com", "hubspot_owner_id": other}));
            let guest = HubSpotContact::from_properties(&contact, &owners)
                .into_guest()
                .expect("a guest")
                .guest;
            assert_eq!(guest.associated_members, None, "{other}");
        }
    }

    #[test]
    fn properties_become_the_draft_and_nulls_stay_unset() {
        let contact = properties(json!({"email": "a@example.com", "firstname": "Ada",
            "lastname": null, "phone": "+1 555", "company": "AE", "hs_object_id": "5012"}));
        let read = HubSpotContact::from_properties(&contact, &OwnerMembers::default());
        assert_eq!(
            read.draft,
            ContactDraft {
                email: Some("a@example.com".into()),
                first_name: Some("Ada".into()),
                last_name: None,
                phone: Some("+1 555".into()),
                company: Some("AE".into()),
            }
        );
        assert_eq!(read.associated_members, None);
    }
}

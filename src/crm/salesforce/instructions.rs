//! `connect salesforce`: Salesforce has no API to subscribe a webhook, so the bridge prints the
//! setup an admin makes in Setup, with this bridge's URL, fields and settings filled in.

use std::fmt::Write;

use super::contact::{ACCOUNT_NAME, FIELDS};
use crate::configuration::SalesforceSettings;

/// The steps, in the order Setup needs them; `target_url` is the endpoint URL, token included.
pub(super) fn render(settings: &SalesforceSettings, target_url: &str) -> String {
    let company = settings.company_field.as_deref().map(str::trim);
    let mut fields: Vec<&str> = ["Id"].into_iter().chain(FIELDS).collect();
    fields.extend(company);
    let fields = fields.join(", ");
    let mut out = String::new();
    let mut line = |text: &str| {
        out.push_str(text);
        out.push('\n');
    };
    line("Salesforce setup for tallyfy-bridge (Salesforce has no API for this: make it in Setup).");
    line("");
    line("1. Outbound message: Setup > Outbound Messages > New Outbound Message");
    line("   Object:        Contact");
    line(&format!("   Endpoint URL:  {target_url}"));
    line("   Send Session ID: off (the bridge does not use it)");
    line(&format!("   Fields to send: {fields}"));
    match company {
        Some(field) => line(&format!(
            "   ({field} is sources.salesforce.company_field: the guest's company.)"
        )),
        None => {
            line(
                "   For the company, add a Contact formula field (Text) Account_Name__c = Account.Name,",
            );
            line("   send it too, and set sources.salesforce.company_field = \"Account_Name__c\".");
        }
    }
    line("");
    line("2. Flow that sends it: Setup > Flows > New Flow > Record-Triggered Flow");
    line("   Object: Contact; trigger: A record is created or updated");
    line("   Condition: Formula Evaluates to True: ISNEW() || ISCHANGED({!$Record.Email})");
    line(
        "   When to run for updated records: Every time a record is updated and meets the condition",
    );
    line("   Optimize for: Actions and Related Records");
    line("   Action: Outbound Message > the message of step 1. Activate the flow.");
    line("   A Contact created without an email is kept as refused; the edit that sets its Email");
    line("   sends it again and makes its guest (\"email later\"). An edit of a Contact already");
    line("   delivered is a duplicate and creates nothing.");
    line(
        "   (An existing workflow rule works too: evaluate \"created, and every time it's edited\",",
    );
    line("   with the same criteria and the outbound message as its action.)");
    line("");
    line("3. Connected app for reconcile (OAuth client credentials):");
    line("   Setup > App Manager > New Connected App (or New External Client App)");
    line("   Enable OAuth; callback URL: any https URL (unused); selected scope:");
    line("   \"Manage user data via APIs (api)\"; Enable Client Credentials Flow.");
    line(
        "   Manage > Edit Policies > Client Credentials Flow > Run As: an integration user who can",
    );
    line(&format!(
        "   read Contacts and their {}.",
        fields.replace("Id, ", "")
    ));
    line("   Then copy the consumer key and secret (Manage Consumer Details).");
    line("");
    line("4. Bridge settings (environment or config file):");
    let instance = settings
        .instance_url
        .as_deref()
        .unwrap_or("https://<my-domain>.my.salesforce.com");
    let _ = writeln!(
        out,
        "   BRIDGE__SOURCES__SALESFORCE__INSTANCE_URL={instance}"
    );
    let id_state = match settings.client_id {
        Some(_) => "(set)",
        None => "<consumer key>",
    };
    let _ = writeln!(out, "   BRIDGE__SOURCES__SALESFORCE__CLIENT_ID={id_state}");
    let secret_state = match settings.client_secret {
        Some(_) => "(set)",
        None => "<consumer secret>",
    };
    let _ = writeln!(
        out,
        "   BRIDGE__SOURCES__SALESFORCE__CLIENT_SECRET={secret_state}"
    );
    let every = settings.reconcile_every_secs;
    let _ = writeln!(
        out,
        "   BRIDGE__SOURCES__SALESFORCE__RECONCILE_EVERY_SECS={every}   (0: only `tallyfy-bridge reconcile --source salesforce`)"
    );
    let _ = writeln!(
        out,
        "   Reconcile lists Contacts by CreatedDate with SOQL and queues those no message delivered;"
    );
    let company_note = match company {
        Some(field) => format!("it reads the company from {field}"),
        None => format!("it reads the company from {ACCOUNT_NAME}"),
    };
    let _ = writeln!(
        out,
        "   {company_note}. Owners: [sources.salesforce.owner_members]"
    );
    let _ = writeln!(
        out,
        "   \"<OwnerId>\" = <Tallyfy member id> associates each guest with its owner's member."
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::configuration::Settings;

    fn settings(company: Option<&str>) -> SalesforceSettings {
        let mut settings = Settings::defaults().expect("defaults").sources.salesforce;
        settings.company_field = company.map(str::to_owned);
        settings
    }

    const URL: &str =
        "https://bridge.example.com/webhooks/salesforce/9b2f7c4e1a8d3f6b0c5e2a9d7f4b1c8e";

    #[test]
    fn the_steps_name_the_url_the_fields_and_the_trigger() {
        let text = render(&settings(Some("Account_Name__c")), URL);
        assert!(text.contains(&format!("Endpoint URL:  {URL}\n")), "{text}");
        assert!(
            text.contains(
                "Fields to send: Id, Email, FirstName, LastName, Phone, OwnerId, Account_Name__c\n"
            ),
            "{text}"
        );
        assert!(text.contains("Object:        Contact"), "{text}");
        assert!(
            text.contains("ISNEW() || ISCHANGED({!$Record.Email})"),
            "{text}"
        );
        assert!(
            text.contains("\"Manage user data via APIs (api)\""),
            "{text}"
        );
        assert!(text.contains("Run As"), "{text}");
        assert!(text.contains("RECONCILE_EVERY_SECS=3600"), "{text}");
    }

    #[test]
    fn without_a_company_field_the_steps_say_how_to_make_one() {
        let text = render(&settings(None), URL);
        assert!(
            text.contains("Fields to send: Id, Email, FirstName, LastName, Phone, OwnerId\n"),
            "{text}"
        );
        assert!(text.contains("Account_Name__c = Account.Name"), "{text}");
        assert!(text.contains("company from Account.Name"), "{text}");
    }

    #[test]
    fn the_secret_is_never_printed() {
        let mut settings = settings(None);
        settings.client_secret = Some("consumer-secret-value-42".parse().expect("secret"));
        settings.client_id = Some("3MVG9-consumer-key".into());
        let text = render(&settings, URL);
        assert!(!text.contains("consumer-secret-value-42"), "{text}");
        assert!(!text.contains("3MVG9-consumer-key"), "{text}");
        assert!(text.contains("CLIENT_SECRET=(set)"), "{text}");
    }
}

//! A notification's fields: only the sObject namespace's, text unescaped, empty ones left out,
//! and the object type read from `xsi:type`.

use super::*;

#[test]
fn elements_in_the_wrong_namespace_are_not_fields() {
    let xml = envelope(&contact(
        r#"<Email>outbound-ns@example.com</Email><other:Phone xmlns:other="urn:elsewhere">1</other:Phone><sf:FirstName>Ada</sf:FirstName>"#,
    ));
    let n = only_notification(&xml);
    assert_eq!(n.fields.len(), 1);
    assert_eq!(n.fields["FirstName"], "Ada");
}

#[test]
fn nil_empty_and_whitespace_only_fields_are_left_out() {
    let xml = envelope(&contact(
        r#"<sf:Email xsi:nil="true"/><sf:Phone></sf:Phone><sf:Title>  </sf:Title><sf:MobilePhone xsi:nil="true">123</sf:MobilePhone><sf:LastName> Lovelace </sf:LastName>"#,
    ));
    let n = only_notification(&xml);
    assert_eq!(n.fields.len(), 1);
    assert_eq!(n.fields["LastName"], "Lovelace");
}

#[test]
fn field_text_is_unescaped_and_cdata_is_included() {
    let xml = envelope(&contact(
        r#"<sf:Account_Name__c>Babbage &amp; Sons</sf:Account_Name__c><sf:Title><![CDATA[<Engineer>]]></sf:Title>"#,
    ));
    let n = only_notification(&xml);
    assert_eq!(n.fields["Account_Name__c"], "Babbage & Sons");
    assert_eq!(n.fields["Title"], "<Engineer>");
}

#[test]
fn a_lead_is_reported_with_object_type_lead() {
    let xml = envelope(
        r#"<Notification><Id>04l5e00000Q1w2eAAB</Id><sObject xsi:type="sf:Lead" xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Company>Acme</sf:Company></sObject></Notification>"#,
    );
    let n = only_notification(&xml);
    assert_eq!(n.object_type.as_deref(), Some("Lead"));
    assert_eq!(n.fields["Company"], "Acme");
}

#[test]
fn a_type_with_white_space_inside_names_no_type() {
    let spaced = envelope(
        r#"<Notification><Id>x</Id><sObject xsi:type="sf: Contact" xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Email>a@example.com</sf:Email></sObject></Notification>"#,
    );
    assert_eq!(only_notification(&spaced).object_type, None);
}

#[test]
fn object_type_is_none_without_xsi_type_or_with_an_unbound_prefix() {
    let untyped = envelope(
        r#"<Notification><Id>x</Id><sObject xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Email>a@example.com</sf:Email></sObject></Notification>"#,
    );
    let n = only_notification(&untyped);
    assert_eq!(n.object_type, None);
    assert_eq!(n.fields["Email"], "a@example.com");

    let unbound =
        envelope(r#"<Notification><Id>x</Id><sObject xsi:type="zz:Contact"/></Notification>"#);
    assert_eq!(only_notification(&unbound).object_type, None);
}

#[test]
fn a_notification_without_id_or_sobject_still_parses() {
    let xml = envelope(r#"<Notification><Id>  </Id></Notification><Notification/>"#);
    let msg = parse(xml.as_bytes()).unwrap();
    assert_eq!(msg.notifications.len(), 2);
    for n in &msg.notifications {
        assert_eq!(n.id, None);
        assert_eq!(n.object_type, None);
        assert!(n.fields.is_empty());
    }
}

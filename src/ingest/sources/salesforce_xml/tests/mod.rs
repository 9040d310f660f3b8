//! The envelope: namespaces by URI, the parts Salesforce always sends, and the limits that
//! refuse a hostile body before any tree is built.

use super::*;

mod fields;

const EXAMPLE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
    xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>00D5e000000AbCdEAF</OrganizationId>
   <ActionId>04k5e000000XyZaAAK</ActionId>
   <SessionId xsi:nil="true"/>
   <EnterpriseUrl>https://example.my.salesforce.com/services/Soap/c/62.0/00D5e000000AbCd</EnterpriseUrl>
   <PartnerUrl>https://example.my.salesforce.com/services/Soap/u/62.0/00D5e000000AbCd</PartnerUrl>
   <Notification>
    <Id>04l5e00000Q1w2eAAB</Id>
    <sObject xsi:type="sf:Contact" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>0035e00000Kq1AbAAJ</sf:Id>
     <sf:AccountId>0015e00000Zz9YyAAJ</sf:AccountId>
     <sf:Account_Name__c>Analytical Engines Ltd</sf:Account_Name__c>
     <sf:Email>ada.lovelace@example.com</sf:Email>
     <sf:FirstName>Ada</sf:FirstName>
     <sf:LastName>Lovelace</sf:LastName>
     <sf:Phone>+44 20 7946 0000</sf:Phone>
    </sObject>
   </Notification>
   <Notification>
    <Id>04l5e00000Q1w2fAAB</Id>
    <sObject xsi:type="sf:Contact" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>0035e00000Kq1AcAAJ</sf:Id>
     <sf:Email>charles.babbage@example.com</sf:Email>
     <sf:FirstName>Charles</sf:FirstName>
     <sf:LastName>Babbage</sf:LastName>
    </sObject>
   </Notification>
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>"#;

/// A standard envelope around `inner` (the children of `notifications`).
fn envelope(inner: &str) -> String {
    format!(
        r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>00D5e000000AbCdEAF</OrganizationId>{inner}</notifications></soapenv:Body></soapenv:Envelope>"#
    )
}

fn contact(sobject_children: &str) -> String {
    format!(
        r#"<Notification><Id>04l5e00000Q1w2eAAB</Id><sObject xsi:type="sf:Contact" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">{sobject_children}</sObject></Notification>"#
    )
}

fn only_notification(xml: &str) -> Notification {
    let mut msg = parse(xml.as_bytes()).unwrap();
    assert_eq!(msg.notifications.len(), 1);
    msg.notifications.remove(0)
}

#[test]
fn example_message_parses_into_org_id_and_two_contact_notifications() {
    let msg = parse(EXAMPLE.as_bytes()).unwrap();
    assert_eq!(msg.organization_id, "00D5e000000AbCdEAF");
    assert_eq!(msg.notifications.len(), 2);

    let ada = &msg.notifications[0];
    assert_eq!(ada.id.as_deref(), Some("04l5e00000Q1w2eAAB"));
    assert_eq!(ada.object_type.as_deref(), Some("Contact"));
    let expected: BTreeMap<String, String> = [
        ("Id", "0035e00000Kq1AbAAJ"),
        ("AccountId", "0015e00000Zz9YyAAJ"),
        ("Account_Name__c", "Analytical Engines Ltd"),
        ("Email", "ada.lovelace@example.com"),
        ("FirstName", "Ada"),
        ("LastName", "Lovelace"),
        ("Phone", "+44 20 7946 0000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(ada.fields, expected);

    let charles = &msg.notifications[1];
    assert_eq!(charles.id.as_deref(), Some("04l5e00000Q1w2fAAB"));
    assert_eq!(charles.object_type.as_deref(), Some("Contact"));
    assert_eq!(charles.fields["Email"], "charles.babbage@example.com");
    assert_eq!(charles.fields["FirstName"], "Charles");
    assert_eq!(charles.fields["LastName"], "Babbage");
    assert!(!charles.fields.contains_key("Phone"));
}

#[test]
fn other_prefixes_for_the_same_namespaces_parse_identically() {
    let renamed = r#"<?xml version="1.0"?>
<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">
 <env:Header/>
 <env:Body>
  <o:notifications xmlns:o="http://soap.sforce.com/2005/09/outbound">
   <o:OrganizationId>00D5e000000AbCdEAF</o:OrganizationId>
   <o:SessionId i:nil="true"/>
   <o:Notification>
    <o:Id>04l5e00000Q1w2eAAB</o:Id>
    <o:sObject i:type="x:Contact" xmlns:x="urn:sobject.enterprise.soap.sforce.com">
     <x:Id>0035e00000Kq1AbAAJ</x:Id>
     <x:AccountId>0015e00000Zz9YyAAJ</x:AccountId>
     <x:Account_Name__c>Analytical Engines Ltd</x:Account_Name__c>
     <x:Email>ada.lovelace@example.com</x:Email>
     <x:FirstName>Ada</x:FirstName>
     <x:LastName>Lovelace</x:LastName>
     <x:Phone>+44 20 7946 0000</x:Phone>
    </o:sObject>
   </o:Notification>
   <o:Notification>
    <o:Id>04l5e00000Q1w2fAAB</o:Id>
    <o:sObject i:type="x:Contact" xmlns:x="urn:sobject.enterprise.soap.sforce.com">
     <x:Id>0035e00000Kq1AcAAJ</x:Id>
     <x:Email>charles.babbage@example.com</x:Email>
     <x:FirstName>Charles</x:FirstName>
     <x:LastName>Babbage</x:LastName>
    </o:sObject>
   </o:Notification>
  </o:notifications>
 </env:Body>
</env:Envelope>"#;
    assert_eq!(parse(renamed.as_bytes()), parse(EXAMPLE.as_bytes()));

    // The sobject namespace may also be the default namespace of sObject.
    let defaulted = envelope(
        r#"<Notification><Id>04l5e00000Q1w2eAAB</Id><sObject xmlns:sf="urn:sobject.enterprise.soap.sforce.com" xsi:type="sf:Contact"><Email xmlns="urn:sobject.enterprise.soap.sforce.com">a@example.com</Email></sObject></Notification>"#,
    );
    assert_eq!(
        only_notification(&defaulted).fields["Email"],
        "a@example.com"
    );
}

#[test]
fn envelope_in_the_wrong_namespace_is_missing_envelope() {
    let xml = envelope(&contact("")).replace(
        "http://schemas.xmlsoap.org/soap/envelope/",
        "http://www.w3.org/2003/05/soap-envelope",
    );
    assert_eq!(
        parse(xml.as_bytes()),
        Err(ParseError::Missing("soapenv:Envelope"))
    );
}

#[test]
fn malformed_xml_is_malformed() {
    for bad in [
        "",
        "not xml",
        "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">",
        "<a><b></a>",
        "<undeclared:Envelope/>",
    ] {
        assert!(
            matches!(parse(bad.as_bytes()), Err(ParseError::Malformed(_))),
            "{bad:?}"
        );
    }
    assert!(matches!(
        parse(b"<a>\xff</a>"),
        Err(ParseError::Malformed(_))
    ));
}

#[test]
fn a_dtd_is_refused_and_entities_are_never_expanded() {
    let laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>&lol3;</OrganizationId><Notification/></notifications></soapenv:Body></soapenv:Envelope>"#;
    assert_eq!(
        parse(laughs.as_bytes()),
        Err(ParseError::Malformed("XML with DTD detected".into()))
    );

    let external = r#"<!DOCTYPE x SYSTEM "file:///etc/passwd"><x/>"#;
    assert_eq!(
        parse(external.as_bytes()),
        Err(ParseError::Malformed("XML with DTD detected".into()))
    );
}

#[test]
fn missing_parts_are_named() {
    let ns = r#"xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/""#;
    let cases = [
        ("<Envelope/>".to_owned(), "soapenv:Envelope"),
        (format!("<soapenv:Envelope {ns}/>"), "soapenv:Body"),
        (
            format!(
                "<soapenv:Envelope {ns}><soapenv:Body><notifications/></soapenv:Body></soapenv:Envelope>"
            ),
            "notifications",
        ),
        (
            format!(
                r#"<soapenv:Envelope {ns}><soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound"><Notification/></notifications></soapenv:Body></soapenv:Envelope>"#
            ),
            "OrganizationId",
        ),
        (
            format!(
                r#"<soapenv:Envelope {ns}><soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId> </OrganizationId><Notification/></notifications></soapenv:Body></soapenv:Envelope>"#
            ),
            "OrganizationId",
        ),
        (envelope(""), "Notification"),
    ];
    for (xml, what) in cases {
        assert_eq!(
            parse(xml.as_bytes()),
            Err(ParseError::Missing(what)),
            "{xml}"
        );
    }
}

#[test]
fn one_hundred_notifications_are_fine_and_one_hundred_and_one_are_too_many() {
    let hundred = envelope(&contact("<sf:Email>a@example.com</sf:Email>").repeat(100));
    assert_eq!(parse(hundred.as_bytes()).unwrap().notifications.len(), 100);

    let too_many = envelope(&contact("").repeat(101));
    assert_eq!(parse(too_many.as_bytes()), Err(ParseError::TooMany(101)));
}

#[test]
fn unknown_extra_elements_are_ignored() {
    let xml = envelope(&format!(
        r#"<Extra>1</Extra>{}<Notification><Id>y</Id><Unknown/></Notification>"#,
        contact("<sf:Email>a@example.com</sf:Email>")
    ));
    let msg = parse(xml.as_bytes()).unwrap();
    assert_eq!(msg.notifications.len(), 2);
    assert_eq!(msg.notifications[1].id.as_deref(), Some("y"));
}

#[test]
fn a_body_past_a_shape_limit_is_too_complex_before_any_tree_is_built() {
    let nested = |n: usize| {
        envelope(&format!(
            "{}{}{}",
            contact("<sf:Email>a@example.com</sf:Email>"),
            "<x>".repeat(n),
            "</x>".repeat(n)
        ))
    };
    // Envelope, Body and notifications are 3 deep.
    assert!(parse(nested(LIMITS.depth - 3).as_bytes()).is_ok());
    let Err(ParseError::TooComplex(message)) = parse(nested(LIMITS.depth - 2).as_bytes()) else {
        panic!("too complex")
    };
    assert!(
        message.contains("more than 32 elements open at once"),
        "{message}"
    );
    // The scan stops at the limit: what follows is never read, broken or not.
    let xml = nested(LIMITS.depth);
    let past = xml.find("<x>").expect("nested") + 3 * (LIMITS.depth - 2);
    let broken = format!("{}<a b=", &xml[..past]);
    assert!(matches!(
        parse(broken.as_bytes()),
        Err(ParseError::TooComplex(_))
    ));
}

#[test]
fn parse_errors_display_what_went_wrong() {
    assert_eq!(
        ParseError::Missing("OrganizationId").to_string(),
        "not a Salesforce outbound message: missing OrganizationId"
    );
    assert_eq!(
        ParseError::TooMany(101).to_string(),
        "too many notifications: 101 (at most 100)"
    );
    assert!(ParseError::Malformed("x".into()).to_string().contains('x'));
}

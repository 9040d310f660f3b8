//! Salesforce Outbound Message SOAP requests, parsed by namespace URI and local name,
//! and the SOAP 1.1 replies (acknowledgement and fault) Salesforce expects back.

use std::collections::BTreeMap;
use std::fmt;

use roxmltree::{Document, Node, ParsingOptions};

use super::xml_shape::{self, LIMITS, Limits, ShapeError};

/// Most notifications one message may carry (the WSDL's maxOccurs).
pub const MAX_NOTIFICATIONS: usize = 100;

const SOAP_ENV_NS: &str = "http://schemas.xmlsoap.org/soap/envelope/";
const OUTBOUND_NS: &str = "http://soap.sforce.com/2005/09/outbound";
const SOBJECT_NS: &str = "urn:sobject.enterprise.soap.sforce.com";
const XSI_NS: &str = "http://www.w3.org/2001/XMLSchema-instance";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundMessage {
    /// `notifications/OrganizationId`, trimmed.
    pub organization_id: String,
    pub notifications: Vec<Notification>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// `Notification/Id`, trimmed; None when absent or empty.
    pub id: Option<String>,
    /// Local part of the sObject's `xsi:type` (e.g. "Contact" for `sf:Contact`); None when absent.
    pub object_type: Option<String>,
    /// sObject child elements by local name (e.g. "Email", "FirstName", "Account_Name__c") → trimmed text.
    /// Elements with xsi:nil="true" or empty text are left out.
    pub fields: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// Not well-formed XML (or has a DTD); carries roxmltree's message.
    Malformed(String),
    /// Well-formed, but not an outbound message: names what is missing, e.g. "soapenv:Body", "notifications", "OrganizationId".
    Missing(&'static str),
    /// More than MAX_NOTIFICATIONS notifications (carries the count).
    TooMany(usize),
    /// Past one of the [`Limits`] on the document's shape; says which, and where the scan stopped.
    TooComplex(String),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(msg) => write!(f, "malformed XML: {msg}"),
            Self::Missing(what) => write!(f, "not a Salesforce outbound message: missing {what}"),
            Self::TooMany(n) => write!(
                f,
                "too many notifications: {n} (at most {MAX_NOTIFICATIONS})"
            ),
            Self::TooComplex(what) => write!(f, "the XML is too complex: {what}"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Parses a message held to [`LIMITS`].
pub fn parse(body: &[u8]) -> Result<OutboundMessage, ParseError> {
    parse_within(body, &LIMITS)
}

/// The shape is checked in one linear pass before the tree is built, so no body costs more than
/// a few passes over its bytes.
pub fn parse_within(body: &[u8], limits: &Limits) -> Result<OutboundMessage, ParseError> {
    let text =
        std::str::from_utf8(body).map_err(|e| ParseError::Malformed(format!("not UTF-8: {e}")))?;
    xml_shape::check(text, limits).map_err(|error| match error {
        ShapeError::Malformed(message) => ParseError::Malformed(message),
        exceeds @ ShapeError::Exceeds { .. } => ParseError::TooComplex(exceeds.to_string()),
    })?;
    let options = ParsingOptions {
        // Refused already; no entity is ever expanded.
        allow_dtd: false,
        // A backstop: the scan counted at least as many nodes (plus the document's root).
        nodes_limit: u32::try_from(limits.nodes.saturating_add(1)).unwrap_or(u32::MAX),
        ..ParsingOptions::default()
    };
    let doc = Document::parse_with_options(text, options)
        .map_err(|e| ParseError::Malformed(e.to_string()))?;

    let envelope = doc.root_element();
    if !is(envelope, SOAP_ENV_NS, "Envelope") {
        return Err(ParseError::Missing("soapenv:Envelope"));
    }
    let body = child(envelope, SOAP_ENV_NS, "Body").ok_or(ParseError::Missing("soapenv:Body"))?;
    let notifications =
        child(body, OUTBOUND_NS, "notifications").ok_or(ParseError::Missing("notifications"))?;
    let organization_id = child(notifications, OUTBOUND_NS, "OrganizationId")
        .and_then(value)
        .ok_or(ParseError::Missing("OrganizationId"))?;

    // Count before building, so an oversized message costs no allocations per entry.
    let count = children(notifications, OUTBOUND_NS, "Notification").count();
    if count > MAX_NOTIFICATIONS {
        return Err(ParseError::TooMany(count));
    }
    // The WSDL's minOccurs is 1: an empty batch is not a real outbound message.
    if count == 0 {
        return Err(ParseError::Missing("Notification"));
    }
    let notifications = children(notifications, OUTBOUND_NS, "Notification")
        .map(notification)
        .collect();

    Ok(OutboundMessage {
        organization_id,
        notifications,
    })
}

fn notification(node: Node<'_, '_>) -> Notification {
    let id = child(node, OUTBOUND_NS, "Id").and_then(value);
    let Some(sobject) = child(node, OUTBOUND_NS, "sObject") else {
        return Notification {
            id,
            object_type: None,
            fields: BTreeMap::new(),
        };
    };

    let mut fields = BTreeMap::new();
    for field in sobject.children().filter(|c| in_ns(*c, SOBJECT_NS)) {
        if let Some(text) = value(field) {
            // First occurrence wins; scalar fields never repeat in practice.
            fields
                .entry(field.tag_name().name().to_owned())
                .or_insert(text);
        }
    }

    Notification {
        id,
        object_type: object_type(sobject),
        fields,
    }
}

/// Local part of `xsi:type`. The prefix is only checked to be bound (an
/// unbound prefix makes the QName meaningless); which namespace it maps to
/// does not matter, since enterprise and partner types share local names.
fn object_type(sobject: Node<'_, '_>) -> Option<String> {
    let raw = sobject.attribute((XSI_NS, "type"))?.trim();
    let local = match raw.split_once(':') {
        Some((prefix, local)) => {
            sobject.lookup_namespace_uri(Some(prefix))?;
            local
        }
        None => raw,
    };
    // A QName holds no white space: `x: Contact` names no type (found by fuzzing).
    (!local.is_empty() && !local.contains(char::is_whitespace)).then(|| local.to_owned())
}

/// Trimmed text of a scalar element; None when nil, empty, or not a scalar
/// (an element with element children, e.g. a nested relationship).
fn value(node: Node<'_, '_>) -> Option<String> {
    let nil = node
        .attribute((XSI_NS, "nil"))
        .is_some_and(|v| matches!(v.trim(), "true" | "1"));
    if nil || node.children().any(|c| c.is_element()) {
        return None;
    }
    let text: String = node.children().filter_map(|c| c.text()).collect();
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn in_ns(node: Node<'_, '_>, ns: &str) -> bool {
    node.is_element() && node.tag_name().namespace() == Some(ns)
}

fn is(node: Node<'_, '_>, ns: &str, name: &str) -> bool {
    in_ns(node, ns) && node.tag_name().name() == name
}

fn children<'a, 'i>(
    node: Node<'a, 'i>,
    ns: &'static str,
    name: &'static str,
) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children().filter(move |c| is(*c, ns, name))
}

fn child<'a, 'i>(node: Node<'a, 'i>, ns: &'static str, name: &'static str) -> Option<Node<'a, 'i>> {
    children(node, ns, name).next()
}

const XML_DECL: &str = r#"<?xml version="1.0" encoding="UTF-8"?>"#;

/// The acknowledgement: `<Ack>true</Ack>` inside `notificationsResponse` (namespace http://soap.sforce.com/2005/09/outbound) inside a SOAP 1.1 envelope, with an XML declaration.
pub fn ack() -> String {
    format!(
        "{XML_DECL}\n<soapenv:Envelope xmlns:soapenv=\"{SOAP_ENV_NS}\"><soapenv:Body>\
         <notificationsResponse xmlns=\"{OUTBOUND_NS}\"><Ack>true</Ack></notificationsResponse>\
         </soapenv:Body></soapenv:Envelope>"
    )
}

/// A SOAP 1.1 fault. `server` true → faultcode `soapenv:Server` (retry may help), false → `soapenv:Client`. `message` is XML-escaped (&, <, >, ", ').
pub fn fault(server: bool, message: &str) -> String {
    let code = if server { "Server" } else { "Client" };
    format!(
        "{XML_DECL}\n<soapenv:Envelope xmlns:soapenv=\"{SOAP_ENV_NS}\"><soapenv:Body><soapenv:Fault>\
         <faultcode>soapenv:{code}</faultcode><faultstring>{}</faultstring>\
         </soapenv:Fault></soapenv:Body></soapenv:Envelope>",
        escape(message)
    )
}

/// Escapes markup characters, and replaces characters XML 1.0 cannot carry at
/// all (most C0 controls, U+FFFE, U+FFFF) so the fault stays well-formed.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => out.push('\u{fffd}'),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn elements_in_the_wrong_namespace_are_not_fields() {
        let xml = envelope(&contact(
            r#"<Email>outbound-ns@example.com</Email><other:Phone xmlns:other="urn:elsewhere">1</other:Phone><sf:FirstName>Ada</sf:FirstName>"#,
        ));
        let n = only_notification(&xml);
        assert_eq!(n.fields.len(), 1);
        assert_eq!(n.fields["FirstName"], "Ada");
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
        let Err(ParseError::TooComplex(message)) = parse(nested(LIMITS.depth - 2).as_bytes())
        else {
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

    #[test]
    fn ack_is_well_formed_and_acknowledges_true() {
        let xml = ack();
        assert!(xml.starts_with(r#"<?xml version="1.0" encoding="UTF-8"?>"#));
        let doc = Document::parse(&xml).unwrap();
        let env = doc.root_element();
        assert!(is(env, SOAP_ENV_NS, "Envelope"));
        let response = child(env, SOAP_ENV_NS, "Body")
            .and_then(|b| child(b, OUTBOUND_NS, "notificationsResponse"))
            .unwrap();
        assert_eq!(
            value(child(response, OUTBOUND_NS, "Ack").unwrap()).as_deref(),
            Some("true")
        );
    }

    fn fault_parts(xml: &str) -> (String, String) {
        assert!(xml.starts_with(r#"<?xml version="1.0" encoding="UTF-8"?>"#));
        let doc = Document::parse(xml).unwrap();
        let fault = child(doc.root_element(), SOAP_ENV_NS, "Body")
            .and_then(|b| child(b, SOAP_ENV_NS, "Fault"))
            .unwrap();
        // SOAP 1.1: faultcode and faultstring are unqualified.
        let text = |name| {
            fault
                .children()
                .find(|c| {
                    c.is_element()
                        && c.tag_name().name() == name
                        && c.tag_name().namespace().is_none()
                })
                .and_then(|c| c.text())
                .unwrap_or_default()
                .to_owned()
        };
        let code = text("faultcode");
        let (prefix, _) = code.split_once(':').unwrap();
        assert_eq!(fault.lookup_namespace_uri(Some(prefix)), Some(SOAP_ENV_NS));
        (code, text("faultstring"))
    }

    #[test]
    fn fault_carries_server_or_client_code_and_escapes_the_message() {
        let message = r#"bad <input> & "quotes" 'too'"#;
        let (code, string) = fault_parts(&fault(true, message));
        assert_eq!(code, "soapenv:Server");
        assert_eq!(string, message);

        let (code, string) = fault_parts(&fault(false, "no"));
        assert_eq!(code, "soapenv:Client");
        assert_eq!(string, "no");

        let raw = fault(true, "<&>\"'");
        assert!(raw.contains("&lt;&amp;&gt;&quot;&apos;"));
    }

    #[test]
    fn fault_stays_well_formed_with_control_characters() {
        let (_, string) = fault_parts(&fault(false, "a\u{0}b\u{1b}c\td"));
        assert_eq!(string, "a\u{fffd}b\u{fffd}c\td");
    }
}

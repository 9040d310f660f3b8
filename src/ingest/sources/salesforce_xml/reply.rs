//! The SOAP 1.1 replies Salesforce expects back: the acknowledgement, and a fault that says
//! whether a retry may help.

use super::{OUTBOUND_NS, SOAP_ENV_NS};

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
    use roxmltree::Document;

    use super::*;
    use crate::ingest::sources::salesforce_xml::{child, is, value};

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

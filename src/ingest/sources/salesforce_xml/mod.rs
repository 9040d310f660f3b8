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

mod reply;

pub use reply::{ack, fault};

#[cfg(test)]
mod tests;

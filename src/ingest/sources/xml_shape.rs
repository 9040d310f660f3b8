//! A linear first pass over an XML body that refuses, before any tree is built, a shape no real
//! Salesforce message has: the tree parser's namespace and attribute handling grow with the
//! square of what is in scope, so an unbounded body could cost minutes of CPU.

use std::fmt;

use xmlparser::{ElementEnd, Token, Tokenizer};

/// Ceilings on a document's shape. A real outbound message nests 6 elements deep, declares 3 or
/// 4 namespaces on the envelope and one per `sObject`, and has at most 2 attributes on an
/// element; 100 notifications of even 1,000 fields each stay under the counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Elements open at once.
    pub depth: usize,
    /// Elements in the document.
    pub elements: usize,
    /// Nodes: elements, text, CDATA sections, comments and processing instructions.
    pub nodes: usize,
    /// Attributes of one element, namespace declarations included.
    pub attributes_per_element: usize,
    /// Attributes in the document, namespace declarations included.
    pub attributes: usize,
    /// Namespace declarations on one element.
    pub namespaces_per_element: usize,
    /// Namespace declarations on an element and its ancestors together.
    pub namespaces_in_scope: usize,
    /// Namespace declarations in the document.
    pub namespaces: usize,
}

/// What Salesforce bodies are held to.
pub const LIMITS: Limits = Limits {
    depth: 32,
    elements: 150_000,
    nodes: 500_000,
    attributes_per_element: 32,
    attributes: 150_000,
    namespaces_per_element: 16,
    namespaces_in_scope: 32,
    namespaces: 1_024,
};

/// Which ceiling a body passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    Depth,
    Elements,
    Nodes,
    AttributesPerElement,
    Attributes,
    NamespacesPerElement,
    NamespacesInScope,
    Namespaces,
}

impl Limit {
    fn of(self, limits: &Limits) -> usize {
        match self {
            Self::Depth => limits.depth,
            Self::Elements => limits.elements,
            Self::Nodes => limits.nodes,
            Self::AttributesPerElement => limits.attributes_per_element,
            Self::Attributes => limits.attributes,
            Self::NamespacesPerElement => limits.namespaces_per_element,
            Self::NamespacesInScope => limits.namespaces_in_scope,
            Self::Namespaces => limits.namespaces,
        }
    }

    fn what(self) -> &'static str {
        match self {
            Self::Depth => "elements open at once",
            Self::Elements => "elements",
            Self::Nodes => "nodes",
            Self::AttributesPerElement => "attributes on one element",
            Self::Attributes => "attributes",
            Self::NamespacesPerElement => "namespace declarations on one element",
            Self::NamespacesInScope => "namespace declarations in scope",
            Self::Namespaces => "namespace declarations",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShapeError {
    /// The tokenizer could not read it, or it has a DTD.
    Malformed(String),
    /// `limit` was passed at byte `at`: the scan stopped there.
    Exceeds { limit: Limit, max: usize, at: usize },
}

impl fmt::Display for ShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Malformed(message) => f.write_str(message),
            Self::Exceeds { limit, max, at } => {
                write!(f, "more than {max} {} (at byte {at})", limit.what())
            }
        }
    }
}

/// Same message as the tree parser's, so a DTD reads the same whichever pass saw it.
const DTD: &str = "XML with DTD detected";

/// One pass over the tokens with constant work per token; stops at the first limit passed.
pub fn check(text: &str, limits: &Limits) -> Result<(), ShapeError> {
    let mut totals = Totals::default();
    // Per open element: its namespace declarations, which leave the scope when it closes.
    let mut open: Vec<usize> = Vec::new();
    let mut in_scope = 0;
    // The element whose start tag is being read: its attributes and namespace declarations.
    let (mut attributes, mut declarations) = (0, 0);
    for token in Tokenizer::from(text) {
        let token = token.map_err(|e| ShapeError::Malformed(e.to_string()))?;
        match token {
            Token::DtdStart { .. } | Token::EmptyDtd { .. } => {
                return Err(ShapeError::Malformed(DTD.into()));
            }
            Token::ElementStart { span, .. } => {
                let at = span.start();
                bump(&mut totals.elements, Limit::Elements, limits, at)?;
                bump(&mut totals.nodes, Limit::Nodes, limits, at)?;
                // This element counts towards its own depth.
                exceeds(Limit::Depth, open.len() + 1, limits, at)?;
                (attributes, declarations) = (0, 0);
            }
            Token::Attribute {
                prefix,
                local,
                span,
                ..
            } => {
                let at = span.start();
                bump(&mut attributes, Limit::AttributesPerElement, limits, at)?;
                bump(&mut totals.attributes, Limit::Attributes, limits, at)?;
                if prefix.as_str() == "xmlns" || (prefix.is_empty() && local.as_str() == "xmlns") {
                    bump(&mut declarations, Limit::NamespacesPerElement, limits, at)?;
                    bump(&mut totals.namespaces, Limit::Namespaces, limits, at)?;
                    bump(&mut in_scope, Limit::NamespacesInScope, limits, at)?;
                }
            }
            Token::ElementEnd { end, .. } => match end {
                ElementEnd::Open => open.push(declarations),
                ElementEnd::Empty => in_scope -= declarations,
                // A close tag that matches nothing is the tree parser's to report.
                ElementEnd::Close(..) => in_scope -= open.pop().unwrap_or(0),
            },
            Token::Text { text } => bump(&mut totals.nodes, Limit::Nodes, limits, text.start())?,
            Token::Cdata { span, .. }
            | Token::Comment { span, .. }
            | Token::ProcessingInstruction { span, .. } => {
                bump(&mut totals.nodes, Limit::Nodes, limits, span.start())?
            }
            Token::Declaration { .. } | Token::EntityDeclaration { .. } | Token::DtdEnd { .. } => {}
        }
    }
    Ok(())
}

#[derive(Default)]
struct Totals {
    elements: usize,
    nodes: usize,
    attributes: usize,
    namespaces: usize,
}

/// Counts one more against `limit`.
fn bump(count: &mut usize, limit: Limit, limits: &Limits, at: usize) -> Result<(), ShapeError> {
    *count += 1;
    exceeds(limit, *count, limits, at)
}

fn exceeds(limit: Limit, count: usize, limits: &Limits, at: usize) -> Result<(), ShapeError> {
    let max = limit.of(limits);
    if count > max {
        Err(ShapeError::Exceeds { limit, max, at })
    } else {
        Ok(())
    }
}

#[cfg(test)]
#[path = "xml_shape_tests.rs"]
mod tests;

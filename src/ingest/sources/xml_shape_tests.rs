//! Each limit at its boundary, with the real numbers: the limit passes, one more is refused.

use super::*;

/// `n` copies of `f(i)`.
fn many(n: usize, f: impl Fn(usize) -> String) -> String {
    (0..n).map(f).collect()
}

/// The limit passed, if any.
fn refused(xml: &str) -> Option<Limit> {
    match check(xml, &LIMITS) {
        Ok(()) => None,
        Err(ShapeError::Exceeds { limit, .. }) => Some(limit),
        Err(ShapeError::Malformed(message)) => panic!("malformed: {message}"),
    }
}

/// Checks that `build(max)` passes and `build(max + 1)` is refused for `limit`.
fn pin(limit: Limit, build: impl Fn(usize) -> String) {
    let max = limit.of(&LIMITS);
    assert_eq!(refused(&build(max)), None, "{limit:?} at {max}");
    assert_eq!(
        refused(&build(max + 1)),
        Some(limit),
        "{limit:?} at {max} + 1"
    );
}

#[test]
fn depth() {
    pin(Limit::Depth, |n| {
        format!("{}{}", "<a>".repeat(n), "</a>".repeat(n))
    });
}

#[test]
fn elements() {
    pin(Limit::Elements, |n| {
        format!("<r>{}</r>", "<a/>".repeat(n - 1))
    });
}

#[test]
fn nodes() {
    // One element and comments: the element limit is not what stops it.
    pin(Limit::Nodes, |n| {
        format!("<r>{}</r>", "<!---->".repeat(n - 1))
    });
    // Text and CDATA count too.
    pin(Limit::Nodes, |n| {
        format!(
            "<r>{}</r>",
            many(n - 1, |i| if i % 2 == 0 { "t" } else { "<![CDATA[c]]>" }
                .into())
        )
    });
}

#[test]
fn attributes_per_element() {
    pin(Limit::AttributesPerElement, |n| {
        format!("<a {}/>", many(n, |i| format!(r#"a{i}="" "#)))
    });
}

#[test]
fn attributes() {
    // Ten to an element, so neither the per-element nor the element limit is what stops it.
    pin(Limit::Attributes, |n| {
        let element = |count: usize| format!("<a {}/>", many(count, |i| format!(r#"a{i}="" "#)));
        let full = many(n / 10, |_| element(10));
        format!("<r>{full}{}</r>", element(n % 10))
    });
}

#[test]
fn namespace_declarations_per_element() {
    pin(Limit::NamespacesPerElement, |n| {
        format!("<a {}/>", many(n, |i| format!(r#"xmlns:p{i}="u" "#)))
    });
    // A default namespace declaration is one too.
    pin(Limit::NamespacesPerElement, |n| {
        format!(
            r#"<a xmlns="u" {}/>"#,
            many(n - 1, |i| format!(r#"xmlns:p{i}="u" "#))
        )
    });
}

#[test]
fn namespace_declarations_in_scope() {
    // Eight on each of nested elements: the in-scope count passes before depth or per-element.
    pin(Limit::NamespacesInScope, |n| {
        let levels: Vec<usize> = (0..n.div_ceil(8)).map(|l| (n - l * 8).min(8)).collect();
        let open = levels
            .iter()
            .enumerate()
            .map(|(l, count)| {
                format!(
                    "<a {}>",
                    many(*count, |i| format!(r#"xmlns:p{l}_{i}="u" "#))
                )
            })
            .collect::<String>();
        format!("{open}{}", "</a>".repeat(levels.len()))
    });
}

#[test]
fn declarations_leave_the_scope_when_their_element_closes() {
    let sixteen = many(16, |i| format!(r#"xmlns:p{i}="u" "#));
    let siblings = format!(
        "<r>{}{}</r>",
        many(10, |_| format!("<a {sixteen}/>")),
        many(10, |_| format!("<a {sixteen}></a>"))
    );
    assert_eq!(refused(&siblings), None);
}

#[test]
fn namespace_declarations_in_the_document() {
    pin(Limit::Namespaces, |n| {
        format!("<r>{}</r>", "<a xmlns:p=\"u\"/>".repeat(n))
    });
}

#[test]
fn the_refusal_names_the_limit_and_where_the_scan_stopped() {
    let xml = format!("<a {}/>", many(40, |i| format!(r#"xmlns:p{i}="u" "#)));
    let error = check(&xml, &LIMITS).expect_err("refused");
    let at = xml.find("xmlns:p16").expect("the 17th declaration");
    assert_eq!(
        error,
        ShapeError::Exceeds {
            limit: Limit::NamespacesPerElement,
            max: 16,
            at
        }
    );
    assert_eq!(
        error.to_string(),
        format!("more than 16 namespace declarations on one element (at byte {at})")
    );
}

#[test]
fn a_dtd_or_a_broken_document_is_malformed() {
    for xml in [
        r#"<!DOCTYPE x [<!ENTITY e "e">]><x/>"#,
        r#"<!DOCTYPE x SYSTEM "file:///etc/passwd"><x/>"#,
    ] {
        assert_eq!(check(xml, &LIMITS), Err(ShapeError::Malformed(DTD.into())));
    }
    assert!(matches!(
        check("<a b=></a>", &LIMITS),
        Err(ShapeError::Malformed(_))
    ));
    // More close tags than open ones: the tree parser reports them; the scan must not panic.
    assert!(!matches!(
        check("<r></a></b></c>", &LIMITS),
        Err(ShapeError::Exceeds { .. })
    ));
}

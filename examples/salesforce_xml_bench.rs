//! Parse cost of the worst Salesforce bodies we can build at the body limit, against a normal
//! 100-notification message of the same size: several interleaved rounds, ratios of medians.
//!
//! `cargo run --release --example salesforce_xml_bench [rounds]` (see BENCHMARKS.md).

use std::hint::black_box;
use std::time::{Duration, Instant};

use tallyfy_bridge::ingest::sources::salesforce_xml;
use tallyfy_bridge::ingest::sources::xml_shape::LIMITS;

/// `sources.salesforce.max_body_bytes`' default.
const SIZE: usize = 4 * 1024 * 1024;
const SF: &str = "urn:sobject.enterprise.soap.sforce.com";

/// Extra namespace declarations on the envelope, its Body and each sObject.
#[derive(Clone, Copy, Default)]
struct Ns<'a> {
    envelope: &'a str,
    body: &'a str,
    sobject: &'a str,
}

/// An outbound message of 100 notifications; `sobject(n)` is the n-th sObject's content.
fn message(namespaces: Ns, sobject: impl Fn(usize) -> String) -> String {
    let Ns {
        envelope: envelope_ns,
        body: body_ns,
        sobject: sobject_ns,
    } = namespaces;
    let notifications: String = (0..100)
        .map(|n| {
            format!(
                r#"<Notification><Id>04l{n:015}</Id><sObject xsi:type="sf:Contact" xmlns:sf="{SF}" {sobject_ns}><sf:Email>c{n}@example.com</sf:Email>{}</sObject></Notification>"#,
                sobject(n)
            )
        })
        .collect();
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" {envelope_ns}><soapenv:Body {body_ns}><notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>00D5e000000AbCdEAF</OrganizationId>{notifications}</notifications></soapenv:Body></soapenv:Envelope>"#
    )
}

/// Repeats `unit(i)` inside each sObject, between `open` and `close`, until the message is
/// about SIZE bytes.
fn filled(namespaces: Ns, (open, close): (&str, &str), unit: impl Fn(usize) -> String) -> String {
    let empty = message(namespaces, |_| format!("{open}{close}")).len();
    let per_sobject = (SIZE - empty) / 100;
    message(namespaces, |_| {
        let mut out = open.to_owned();
        let mut i = 0;
        loop {
            let next = unit(i);
            if out.len() + next.len() > per_sobject {
                out.push_str(close);
                break out;
            }
            out.push_str(&next);
            i += 1;
        }
    })
}

fn declarations(prefix: &str, n: usize) -> String {
    (0..n)
        .map(|i| format!(r#"xmlns:{prefix}{i}="urn:{prefix}{i}" "#))
        .collect()
}

struct Body {
    name: &'static str,
    xml: String,
    /// What parse must answer: Ok (a message) or the start of the error's text.
    expect: &'static str,
}

fn bodies() -> Vec<Body> {
    let per_sobject = |total: usize| total / 100;
    // Per sObject, with room left for the message's own elements and attributes.
    let fields = per_sobject(LIMITS.elements) - 100;
    let with_attribute = per_sobject(LIMITS.attributes) - 100;
    let none = ("", "");
    vec![
        Body {
            name: "normal: 100 notifications of ~1,000 short fields",
            xml: filled(Ns::default(), none, |i| {
                format!("<sf:Field_{i}__c>value {i}</sf:Field_{i}__c>")
            }),
            expect: "Ok",
        },
        Body {
            name: "normal: 100 notifications with a 40 KB Description",
            xml: filled(
                Ns::default(),
                ("<sf:Description>", "</sf:Description>"),
                |i| format!("Lorem ipsum dolor sit amet {i}. "),
            ),
            expect: "Ok",
        },
        Body {
            // 16 on the envelope, 14 on its Body, the default and sf: 32 in scope in each sObject;
            // names and attributes use the prefix looked up last.
            name: "worst: prefixed names, 32 namespaces in scope",
            xml: filled(
                Ns {
                    envelope: &declarations("p", 14),
                    body: &declarations("q", 14),
                    sobject: "",
                },
                none,
                |i| {
                    if i < with_attribute.min(fields) {
                        format!(r#"<p13:F{i} p13:a="&amp;"/>"#)
                    } else {
                        "&amp;".into()
                    }
                },
            ),
            expect: "Ok",
        },
        Body {
            // The normal fields, named with the last of 32 prefixes in scope, which is sf's.
            name: "worst: the normal fields, sf the last of 32 prefixes in scope",
            xml: filled(
                Ns {
                    envelope: &declarations("p", 14),
                    body: &declarations("q", 14),
                    sobject: "",
                },
                none,
                |i| format!("<sf:Field_{i}__c>value {i}</sf:Field_{i}__c>"),
            ),
            expect: "Ok",
        },
        Body {
            // Field names sharing a 200-character prefix: every map insertion compares it.
            name: "worst: fields whose names share a 200-character prefix",
            xml: {
                let prefix = "F".repeat(200);
                filled(Ns::default(), none, |i| {
                    format!("<sf:{prefix}{i}>v</sf:{prefix}{i}>")
                })
            },
            expect: "Ok",
        },
        Body {
            name: "worst: 32 attributes per element, references in values",
            xml: filled(Ns::default(), none, |i| {
                if i < with_attribute / 32 {
                    let attrs: String = (0..32).map(|a| format!(r#"a{a}="&amp;&#38;" "#)).collect();
                    format!("<sf:F{i} {attrs}/>")
                } else {
                    "&#38;".into()
                }
            }),
            expect: "Ok",
        },
        Body {
            name: "worst: character and entity references in text",
            xml: filled(Ns::default(), ("<sf:Title>", "</sf:Title>"), |_| {
                "&#x26;&amp;".into()
            }),
            expect: "Ok",
        },
        Body {
            // 16 + 1 on the envelope and notifications, 10 per notification.
            name: "worst: 1,017 namespace declarations",
            xml: filled(
                Ns {
                    envelope: &declarations("p", 14),
                    body: "",
                    sobject: &declarations("q", 6),
                },
                none,
                |i| {
                    if i < 3 {
                        format!(r#"<sf:N{i} xmlns:r="urn:r{i}">x</sf:N{i}>"#)
                    } else if i < fields {
                        format!("<p13:F{i}>v</p13:F{i}>")
                    } else {
                        "&amp;".into()
                    }
                },
            ),
            expect: "Ok",
        },
        Body {
            name: "worst: nesting 32 deep, repeated",
            xml: filled(Ns::default(), none, |i| {
                if i < fields / 27 {
                    format!("{}v{}", "<sf:D>".repeat(27), "</sf:D>".repeat(27))
                } else {
                    "&amp;".into()
                }
            }),
            expect: "Ok",
        },
        Body {
            name: "worst: 500,000 nodes (comments)",
            xml: filled(Ns::default(), none, |i| {
                if i < per_sobject(LIMITS.nodes) - 1_500 {
                    "<!---->".into()
                } else {
                    "&amp;".into()
                }
            }),
            expect: "Ok",
        },
        Body {
            name: "refused near its end: the 150,001st element",
            xml: filled(Ns::default(), none, |_| "<sf:F>vvvvvvvvvvvvv</sf:F>".into()),
            expect: "the XML is too complex",
        },
        Body {
            name: "refused: a declaration flood (4,000 on the envelope + 3,000 nested, 120 KB)",
            xml: {
                let d: String = (0..4000).map(|i| format!(r#"xmlns:a{i}="u" "#)).collect();
                let n = format!(
                    "{}{}",
                    r#"<x xmlns:b="v">"#.repeat(3000),
                    "</x>".repeat(3000)
                );
                format!(
                    r#"<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/" {d}><e:Body>{n}</e:Body></e:Envelope>"#
                )
            },
            expect: "the XML is too complex",
        },
    ]
}

fn check(body: &Body) {
    let got = salesforce_xml::parse(body.xml.as_bytes());
    let ok = match (&got, body.expect) {
        (Ok(message), "Ok") => message.notifications.len() == 100,
        (Err(error), expect) => error.to_string().starts_with(expect),
        _ => false,
    };
    assert!(
        ok,
        "{}: {:?}",
        body.name,
        got.map(|m| m.notifications.len())
    );
}

fn time(body: &Body, iterations: u32) -> Duration {
    let start = Instant::now();
    for _ in 0..iterations {
        let _ = black_box(salesforce_xml::parse(black_box(body.xml.as_bytes())));
    }
    start.elapsed() / iterations
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// For contrast, the tree parser alone (no shape check) on the declaration flood at a quarter
/// of its size: 1,000 declarations on the envelope, 1,000 nested elements declaring one each.
fn unchecked_declaration_flood() -> Duration {
    let d: String = (0..1000).map(|i| format!(r#"xmlns:a{i}="u" "#)).collect();
    let n = format!(
        "{}{}",
        r#"<x xmlns:b="v">"#.repeat(1000),
        "</x>".repeat(1000)
    );
    let xml = format!(r#"<e:Envelope xmlns:e="urn:e" {d}><e:Body>{n}</e:Body></e:Envelope>"#);
    let start = Instant::now();
    let parsed = roxmltree::Document::parse(&xml).map(|doc| doc.descendants().count());
    let elapsed = start.elapsed();
    println!(
        "\nroxmltree alone on the declaration flood at a quarter size ({} bytes, {} nodes): {:.0} ms",
        xml.len(),
        parsed.unwrap_or_default(),
        elapsed.as_secs_f64() * 1000.0
    );
    elapsed
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|r| r.parse().ok())
        .unwrap_or(7);
    let bodies = bodies();
    for body in &bodies {
        check(body);
    }
    let mut samples = vec![Vec::new(); bodies.len()];
    for _ in 0..rounds {
        for (body, samples) in bodies.iter().zip(&mut samples) {
            samples.push(time(body, 5));
        }
    }
    let medians: Vec<Duration> = samples.into_iter().map(median).collect();
    let normal = medians[0];
    println!(
        "{rounds} interleaved rounds of 5 parses each; median per parse; ratio to the first row\n"
    );
    println!("| body | bytes | parse (median) | ratio |");
    println!("|---|---:|---:|---:|");
    for (body, median) in bodies.iter().zip(&medians) {
        println!(
            "| {} | {} | {:.3} ms | {:.2} |",
            body.name,
            body.xml.len(),
            median.as_secs_f64() * 1000.0,
            median.as_secs_f64() / normal.as_secs_f64()
        );
    }
    unchecked_declaration_flood();
}

//! What keeps the Salesforce endpoint safe without a signature: the secret token in its URL,
//! checked before the body is read; a body limit that fits 100 notifications; and limits on the
//! XML's shape, so no body costs more than a few passes over its bytes.

use super::salesforce::{answer, contact, message, post, post_to};
use super::{Bridge, SALESFORCE_ORG_18, SALESFORCE_TOKEN, spawn_crm_app, spawn_crm_app_with};

/// Offset of the `n`th (from 1) occurrence of `needle`.
fn nth(haystack: &str, needle: &str, n: usize) -> usize {
    haystack
        .match_indices(needle)
        .nth(n - 1)
        .map(|(at, _)| at)
        .expect("enough occurrences")
}

#[tokio::test]
async fn without_the_token_every_request_is_refused_before_its_body_is_read() {
    // A body limit below the body: read first, it would be 413.
    let (app, _crm) =
        spawn_crm_app_with(&[("BRIDGE__SOURCES__SALESFORCE__MAX_BODY_BYTES", "1024".into())]).await;
    let xml = message(SALESFORCE_ORG_18, &[contact("04l1", "a@example.com")]);
    let big = format!("{xml}{}", " ".repeat(2048));
    let last = SALESFORCE_TOKEN.chars().last().expect("a token");
    let other_last = if last == '0' { '1' } else { '0' };
    let wrong = format!(
        "{}{other_last}",
        &SALESFORCE_TOKEN[..SALESFORCE_TOKEN.len() - 1]
    );
    for path in [
        "salesforce".to_owned(),
        format!("salesforce/{wrong}"),
        format!("salesforce/{}", &SALESFORCE_TOKEN[..32]),
        format!("salesforce/{SALESFORCE_TOKEN}0"),
        format!("salesforce?token={SALESFORCE_TOKEN}"),
    ] {
        for body in [xml.as_str(), big.as_str(), "<not xml"] {
            let (status, fault) = answer(post_to(&app, &path, body).await).await;
            assert_eq!(status, 401, "{path}");
            let fault = fault.expect_err("a fault");
            assert!(fault.contains("soapenv:Client"), "{fault}");
            assert!(fault.contains("authentication failed"), "{fault}");
        }
    }
    // With the token, the same body is read and gets 413.
    let (status, _) = answer(post(&app, &big).await).await;
    assert_eq!(status, 413);
    assert_eq!(app.outbox_rows().await, 0);
    // Sources that take no token have no such path.
    let response = app
        .post_source(&format!("pipedrive/{SALESFORCE_TOKEN}"), &[], "{}")
        .await;
    assert_eq!(response.status().as_u16(), 404);
}

/// A SOAP envelope around `inner` as the Body's content, with `declarations` on the envelope.
fn envelope(declarations: &str, inner: &str) -> String {
    format!(
        r#"<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/" {declarations}><e:Body>{inner}</e:Body></e:Envelope>"#
    )
}

#[tokio::test]
async fn hostile_xml_shapes_get_a_client_fault_where_the_scan_passed_a_limit() {
    let (app, _crm) = spawn_crm_app().await;
    let many = |n: usize, f: &dyn Fn(usize) -> String| (0..n).map(f).collect::<String>();
    // The issue's body: 4,000 declarations on the envelope, 3,000 nested elements declaring one.
    let issue = envelope(
        &many(4000, &|i| format!(r#"xmlns:a{i}="u" "#)),
        &format!(
            "{}{}",
            r#"<x xmlns:b="v">"#.repeat(3000),
            "</x>".repeat(3000)
        ),
    );
    let attributes = envelope(
        "",
        &format!("<x {}/>", many(30_000, &|i| format!(r#"q{i}="" "#))),
    );
    let deep = envelope(
        "",
        &format!("{}{}", "<x>".repeat(3000), "</x>".repeat(3000)),
    );
    let in_scope = envelope(
        "",
        &format!(
            "{}{}",
            many(100, &|l| format!(
                "<x {}>",
                many(8, &|i| format!(r#"xmlns:b{l}_{i}="v" "#))
            )),
            "</x>".repeat(100)
        ),
    );
    let declarations = envelope("", &r#"<x xmlns:b="v"/>"#.repeat(3000));
    let elements = envelope("", &"<x/>".repeat(200_000));
    let nodes = envelope("", &"<!---->".repeat(510_000));
    let cases = [
        // The envelope's own declaration is the first; the 17th on one element passes the limit.
        (
            &issue,
            "namespace declarations on one element",
            nth(&issue, "xmlns:", 17),
        ),
        (
            &attributes,
            "attributes on one element",
            nth(&attributes, "q", 33),
        ),
        // Envelope and Body are depth 1 and 2.
        (&deep, "elements open at once", nth(&deep, "<x>", 31)),
        (
            &in_scope,
            "namespace declarations in scope",
            nth(&in_scope, "xmlns:b", 32),
        ),
        (
            &declarations,
            "namespace declarations (",
            nth(&declarations, "xmlns:b", 1024),
        ),
        (
            &elements,
            "more than 150000 elements (",
            nth(&elements, "<x/>", 149_999),
        ),
        (&nodes, "nodes", nth(&nodes, "<!---->", 499_999)),
    ];
    for (body, limit, at) in cases {
        let (status, fault) = answer(post(&app, body).await).await;
        let fault = fault.expect_err("a fault");
        assert_eq!(status, 422, "{limit}: {fault}");
        assert!(fault.contains("soapenv:Client"), "{fault}");
        assert!(
            fault.contains("the XML is too complex: more than"),
            "{fault}"
        );
        assert!(fault.contains(limit), "{limit}: {fault}");
        // The work done: one linear scan up to this byte, no tree built.
        assert!(
            fault.contains(&format!("(at byte {at})")),
            "{limit} at {at}: {fault}"
        );
    }
    assert!(
        nth(&issue, "xmlns:", 17) < 400,
        "the issue's body stops within its first 400 bytes"
    );
    assert_eq!(app.outbox_rows().await, 0);
}

/// `count` Contact notifications of about `size` bytes each.
fn padded_contacts(count: usize, size: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            let base = contact(&format!("04l{i:015}"), &format!("c{i}@example.com"));
            let pad = "d".repeat(size.saturating_sub(base.len() + 40));
            base.replace(
                "</sObject>",
                &format!("<sf:Description>{pad}</sf:Description></sObject>"),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_hundred_notifications_past_the_general_body_limit_are_all_stored() {
    let (app, _crm) = spawn_crm_app().await;
    let xml = message(SALESFORCE_ORG_18, &padded_contacts(100, 2700));
    assert!(
        xml.len() > 262_144,
        "past http.max_body_bytes: {}",
        xml.len()
    );
    let (status, ack) = answer(post(&app, &xml).await).await;
    assert_eq!((status, ack), (200, Ok(())));
    assert_eq!(app.outbox_rows().await, 100);
    // The other sources keep http.max_body_bytes.
    let response = app
        .post_source("pipedrive", &super::pipedrive::auth(), " ".repeat(262_145))
        .await;
    assert_eq!(response.status().as_u16(), 413);
}

/// Sends `body` chunked without its last chunk (a server that stops reading leaves nothing
/// unread), and returns the response's status line.
async fn post_chunked(address: &str, path: &str, body: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address.trim_start_matches("http://"))
        .await
        .expect("connect");
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: bridge\r\nContent-Type: text/xml\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    );
    for chunk in body.as_bytes().chunks(64 * 1024) {
        request.push_str(&format!("{:x}\r\n", chunk.len()));
        request.push_str(std::str::from_utf8(chunk).expect("ASCII body"));
        request.push_str("\r\n");
    }
    let _ = stream.write_all(request.as_bytes()).await;
    let mut response = vec![0; 64];
    let n = stream.read(&mut response).await.expect("response");
    String::from_utf8_lossy(&response[..n]).into_owned()
}

#[tokio::test]
async fn a_message_of_exactly_the_salesforce_limit_is_stored_and_one_byte_more_is_413() {
    let (app, _crm) = spawn_crm_app().await;
    let limit = 4 * 1024 * 1024;
    let mut xml = message(SALESFORCE_ORG_18, &padded_contacts(100, 2700));
    // Pad the last Description to the exact size.
    let close = xml.rfind("</sf:Description>").expect("a description");
    xml.insert_str(close, &"d".repeat(limit - xml.len()));
    assert_eq!(xml.len(), limit);
    let (status, ack) = answer(post(&app, &xml).await).await;
    assert_eq!((status, ack), (200, Ok(())));
    assert_eq!(app.outbox_rows().await, 100);

    let path = format!("/webhooks/salesforce/{SALESFORCE_TOKEN}");
    let over = format!("{xml} ");
    let status_line = post_chunked(&app.address, &path, &over).await;
    assert!(status_line.starts_with("HTTP/1.1 413"), "{status_line}");
}

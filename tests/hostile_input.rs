//! Hostile input over HTTP, table-driven: every case gets its documented status
//! (docs/service.md, "Errors" and "Hostile input") and, when it fails, the one JSON
//! error shape. No case may answer 5xx; a handler panic would be a 500 (the panic layer
//! turns it into one), so "no 5xx" also means "no panic".

#[path = "support/common.rs"]
mod common;

use common::TestServer;
use serde_json::{Value, json};

const JSON: Option<&str> = Some("application/json");

fn event() -> Value {
    json!({
        "timestamp": "2020-02-03 12:44:19.260",
        "user_id": "5932501938287412564",
        "ip_address": "84.48.61.135",
        "country": "NO",
        "asn": 15659,
        "browser_name_and_version": "Chrome 86.0.4202",
        "os_name_and_version": "Mac OS X 10.14.6",
        "device_type": "desktop",
        "login_successful": true,
        "is_attack_ip": false
    })
}

/// The event with `field` set to `value`, serialised.
fn with(field: &str, value: Value) -> Vec<u8> {
    let mut event = event();
    event[field] = value;
    event.to_string().into_bytes()
}

/// The event with `field` set to raw JSON text (for literals serde_json cannot write).
fn with_raw(field: &str, raw: &str) -> Vec<u8> {
    let mut event = event();
    event[field] = json!("@@RAW@@");
    event.to_string().replace("\"@@RAW@@\"", raw).into_bytes()
}

fn batch(events: Vec<Value>) -> Vec<u8> {
    json!({ "events": events }).to_string().into_bytes()
}

/// What a case expects: a status and, for failures, the error code. `Ok(unseen)` is a
/// 200 whose `unseen` list must contain the feature named (or be anything when empty).
enum Expect {
    Ok(&'static str),
    Error(u16, &'static str),
    /// 200 from the batch route with this many scored and failed entries.
    Batch {
        scored: usize,
        failed: usize,
    },
}

struct Case {
    name: &'static str,
    path: &'static str,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    expect: Expect,
}

fn case(name: &'static str, body: Vec<u8>, expect: Expect) -> Case {
    Case {
        name,
        path: "/v1/score",
        content_type: JSON,
        body,
        expect,
    }
}

fn batch_case(name: &'static str, body: Vec<u8>, expect: Expect) -> Case {
    Case {
        path: "/v1/score/batch",
        ..case(name, body, expect)
    }
}

fn cases() -> Vec<Case> {
    use Expect::{Error, Ok};
    let bad = |reason| Error(422, reason);
    let deep = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth)).into_bytes();
    let deep_object = format!(
        "{{\"country\": {}1{}}}",
        "{\"a\":".repeat(10_000),
        "}".repeat(10_000)
    );
    let three_mb = "x".repeat(3 * 1024 * 1024);
    let half_bad: Vec<Value> = (0..200)
        .map(|i| {
            if i % 2 == 0 {
                event()
            } else {
                json!({"timestamp": "not a time", "user_id": i})
            }
        })
        .collect();
    let mut control = event();
    control["country"] = json!("N\u{1}O\u{7f}\u{0}");

    vec![
        // Not JSON at all.
        case("empty body", Vec::new(), Error(400, "malformed_json")),
        case(
            "whitespace only",
            b"  \n\t ".to_vec(),
            Error(400, "malformed_json"),
        ),
        case(
            "truncated object",
            b"{\"country\": \"NO\"".to_vec(),
            Error(400, "malformed_json"),
        ),
        case(
            "missing value",
            b"{\"country\": }".to_vec(),
            Error(400, "malformed_json"),
        ),
        case(
            "trailing comma",
            b"{\"country\": \"NO\",}".to_vec(),
            Error(400, "malformed_json"),
        ),
        case(
            "single quotes",
            b"{'country': 'NO'}".to_vec(),
            Error(400, "malformed_json"),
        ),
        case(
            "trailing garbage",
            b"{}x".to_vec(),
            Error(400, "malformed_json"),
        ),
        case(
            "two documents",
            b"{} {}".to_vec(),
            Error(400, "malformed_json"),
        ),
        case(
            "byte order mark",
            b"\xef\xbb\xbf{}".to_vec(),
            Error(400, "malformed_json"),
        ),
        case(
            "invalid UTF-8",
            b"{\"country\": \"\xff\xfe\"}".to_vec(),
            Error(400, "malformed_json"),
        ),
        case(
            "lone surrogate escape",
            with_raw("country", "\"\\ud800\""),
            Error(400, "malformed_json"),
        ),
        case(
            "raw control character in a string",
            b"{\"country\": \"N\x01O\"}".to_vec(),
            Error(400, "malformed_json"),
        ),
        case(
            "NaN literal",
            with_raw("round_trip_time_ms", "NaN"),
            Error(400, "malformed_json"),
        ),
        case(
            "Infinity literal",
            with_raw("round_trip_time_ms", "Infinity"),
            Error(400, "malformed_json"),
        ),
        case(
            "-Infinity literal",
            with_raw("asn", "-Infinity"),
            Error(400, "malformed_json"),
        ),
        case(
            "number overflowing f64",
            with_raw("round_trip_time_ms", "1e400"),
            Error(400, "malformed_json"),
        ),
        case(
            "10,000-deep arrays",
            deep(10_000),
            Error(400, "malformed_json"),
        ),
        case(
            "10,000-deep objects",
            deep_object.into_bytes(),
            Error(400, "malformed_json"),
        ),
        batch_case(
            "10,000-deep arrays in a batch",
            deep(10_000),
            Error(400, "malformed_json"),
        ),
        // Not the shape of an event.
        case("top-level array", b"[1, 2]".to_vec(), bad("invalid_field")),
        case(
            "top-level string",
            b"\"login\"".to_vec(),
            bad("invalid_field"),
        ),
        case("top-level null", b"null".to_vec(), bad("invalid_field")),
        case("top-level number", b"42".to_vec(), bad("invalid_field")),
        // Wrong types and values, each naming its field.
        case(
            "country is a number",
            with("country", json!(47)),
            bad("invalid_field"),
        ),
        case(
            "country is an array",
            with("country", json!(["NO"])),
            bad("invalid_field"),
        ),
        case(
            "device_type is an object",
            with("device_type", json!({"a": 1})),
            bad("invalid_field"),
        ),
        case(
            "login_successful is 1",
            with("login_successful", json!(1)),
            bad("invalid_field"),
        ),
        case(
            "login_successful is \"yes\"",
            with("login_successful", json!("yes")),
            bad("invalid_field"),
        ),
        case(
            "is_attack_ip is an array",
            with("is_attack_ip", json!([true])),
            bad("invalid_field"),
        ),
        case(
            "user_id beyond 64 bits (number)",
            with_raw("user_id", "9223372036854775808"),
            bad("invalid_field"),
        ),
        case(
            "user_id beyond 64 bits (string)",
            with("user_id", json!("99999999999999999999")),
            bad("invalid_field"),
        ),
        case(
            "user_id below -2^63",
            with_raw("user_id", "-9223372036854775809"),
            bad("invalid_field"),
        ),
        case(
            "user_id is a fraction",
            with("user_id", json!(1.5)),
            bad("invalid_field"),
        ),
        case(
            "user_id is a boolean",
            with("user_id", json!(true)),
            bad("invalid_field"),
        ),
        case(
            "asn is a fraction",
            with("asn", json!(1.5)),
            bad("invalid_field"),
        ),
        case(
            "asn is text",
            with("asn", json!("AS15659")),
            bad("invalid_field"),
        ),
        case(
            "round_trip_time_ms is \"NaN\"",
            with("round_trip_time_ms", json!("NaN")),
            bad("invalid_field"),
        ),
        case(
            "round_trip_time_ms is \"inf\"",
            with("round_trip_time_ms", json!("inf")),
            bad("invalid_field"),
        ),
        case(
            "timestamp is words",
            with("timestamp", json!("yesterday")),
            bad("invalid_field"),
        ),
        case(
            "timestamp epoch ms beyond chrono",
            with("timestamp", json!(i64::MAX)),
            bad("invalid_field"),
        ),
        case(
            "timestamp epoch ms beyond i64",
            with_raw("timestamp", "99999999999999999999"),
            bad("invalid_field"),
        ),
        case(
            "timestamp digits beyond i64",
            with("timestamp", json!("99999999999999999999")),
            bad("invalid_field"),
        ),
        case(
            "timestamp year 10000",
            with("timestamp", json!("10000-01-01 00:00:00")),
            bad("invalid_field"),
        ),
        case(
            "timestamp month 13",
            with("timestamp", json!("2020-13-01 00:00:00")),
            bad("invalid_field"),
        ),
        case(
            "timestamp fractional epoch",
            with("timestamp", json!(1.5e12)),
            bad("invalid_field"),
        ),
        case(
            "timestamp is an object",
            with("timestamp", json!({"ms": 1})),
            bad("invalid_field"),
        ),
        // Accepted: odd but meaningful, or not a model input.
        case(
            "negative asn (not a model input)",
            with("asn", json!(-15659)),
            Ok(""),
        ),
        case(
            "negative epoch ms (1969)",
            with("timestamp", json!(-1000)),
            Ok(""),
        ),
        case(
            "year 1 timestamp",
            with("timestamp", json!("0001-01-01 00:00:00")),
            Ok(""),
        ),
        case(
            "unknown fields are ignored",
            with("gateway", json!({"trace": [1, 2, 3]})),
            Ok(""),
        ),
        case(
            "null fields are missing",
            with("country", Value::Null),
            Ok(""),
        ),
        case(
            "unseen country",
            with("country", json!("Atlantis")),
            Ok("country_code"),
        ),
        case(
            "unseen browser",
            with("browser_name_and_version", json!("Netscape 4.0")),
            Ok("browser_name"),
        ),
        case(
            "unseen OS",
            with("os_name_and_version", json!("Plan 9 4")),
            Ok("os_name"),
        ),
        case(
            "unseen device",
            with("device_type", json!("toaster")),
            Ok("device_type"),
        ),
        case(
            "escaped control characters",
            control.to_string().into_bytes(),
            Ok("country_code"),
        ),
        case(
            "emoji and right-to-left text",
            with("country", json!("\u{202e}ON\u{1f600}")),
            Ok("country_code"),
        ),
        case(
            "60 KB string",
            with("user_agent", json!("a".repeat(60_000))),
            Ok(""),
        ),
        case(
            "60 KB unseen browser",
            with("browser_name_and_version", json!("b".repeat(60_000))),
            Ok("browser_name"),
        ),
        case(
            "IPv6 with a zone index",
            with("ip_address", json!("fe80::1%eth0")),
            Ok(""),
        ),
        case(
            "IP address that is not one",
            with("ip_address", json!("999.1.1.1")),
            Ok(""),
        ),
        case(
            "duplicate keys (last wins)",
            b"{\"country\": 1, \"country\": \"NO\"}".to_vec(),
            Ok(""),
        ),
        // Limits and content types.
        case(
            "70 KB string (over 64 KiB)",
            with("user_agent", json!("a".repeat(70_000))),
            Error(413, "payload_too_large"),
        ),
        case(
            "3 MB body",
            three_mb.clone().into_bytes(),
            Error(413, "payload_too_large"),
        ),
        Case {
            content_type: None,
            ..case(
                "missing content type",
                event().to_string().into_bytes(),
                Error(415, "unsupported_media_type"),
            )
        },
        Case {
            content_type: Some("text/plain"),
            ..case(
                "text/plain",
                event().to_string().into_bytes(),
                Error(415, "unsupported_media_type"),
            )
        },
        Case {
            content_type: Some("application/x-www-form-urlencoded"),
            ..case(
                "form content type",
                b"country=NO".to_vec(),
                Error(415, "unsupported_media_type"),
            )
        },
        Case {
            content_type: Some("application/json; charset=utf-8"),
            ..case(
                "JSON with a charset",
                event().to_string().into_bytes(),
                Ok(""),
            )
        },
        Case {
            content_type: Some("application/problem+json"),
            ..case(
                "a +json content type",
                event().to_string().into_bytes(),
                Ok(""),
            )
        },
        // Batches.
        batch_case(
            "batch of 100,001 events",
            batch(vec![json!({}); 100_001]),
            Error(413, "batch_too_large"),
        ),
        batch_case(
            "3 MB event in a batch",
            batch(vec![json!({"user_agent": three_mb, "country": "NO"})]),
            Expect::Batch {
                scored: 1,
                failed: 0,
            },
        ),
        batch_case(
            "half the events bad",
            batch(half_bad),
            Expect::Batch {
                scored: 100,
                failed: 100,
            },
        ),
        batch_case(
            "events is not an array",
            b"{\"events\": {}}".to_vec(),
            bad("invalid_request"),
        ),
        batch_case(
            "events missing",
            b"{\"items\": []}".to_vec(),
            bad("invalid_request"),
        ),
        batch_case(
            "a bare array of events to batch",
            serde_json::to_vec(&vec![event(), event()]).unwrap(),
            bad("invalid_request"),
        ),
        batch_case(
            "an empty array to batch",
            b"[]".to_vec(),
            bad("invalid_request"),
        ),
        batch_case(
            "events is null",
            b"{\"events\": null}".to_vec(),
            bad("invalid_request"),
        ),
        batch_case(
            "empty batch",
            batch(Vec::new()),
            Expect::Batch {
                scored: 0,
                failed: 0,
            },
        ),
        batch_case(
            "batch of scalars",
            batch(vec![json!(1), json!("a"), Value::Null]),
            Expect::Batch {
                scored: 0,
                failed: 3,
            },
        ),
        batch_case(
            "empty body to batch",
            Vec::new(),
            Error(400, "malformed_json"),
        ),
    ]
}

async fn check(server: &TestServer, client: &reqwest::Client, case: &Case) {
    let mut request = client.post(server.url(case.path)).body(case.body.clone());
    if let Some(content_type) = case.content_type {
        request = request.header("content-type", content_type);
    }
    let name = case.name;
    let response = request
        .send()
        .await
        .unwrap_or_else(|err| panic!("{name}: no answer: {err:?}"));
    let status = response.status().as_u16();
    assert!(status < 500, "{name}: {status}");
    let closes = response
        .headers()
        .get("connection")
        .is_some_and(|v| v == "close");
    let body: Value = response
        .json()
        .await
        .unwrap_or_else(|err| panic!("{name}: body is not JSON: {err}"));
    match case.expect {
        Expect::Error(want, code) => {
            assert_eq!(status, want, "{name}: {body:.300}");
            assert_eq!(body["error"]["status"], want, "{name}: {body:.300}");
            assert_eq!(body["error"]["code"], code, "{name}: {body:.300}");
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(!message.is_empty(), "{name}: no message");
            // Its body went unread, so the server closes the connection and must say so.
            let unread = matches!(code, "payload_too_large" | "unsupported_media_type");
            assert!(closes || !unread, "{name}: no `connection: close`");
        }
        Expect::Ok(unseen) => {
            assert_eq!(status, 200, "{name}: {body:.300}");
            assert!(body["score"].as_f64().is_some_and(f64::is_finite), "{name}");
            if !unseen.is_empty() {
                let listed = body["unseen"].as_array().unwrap();
                assert!(listed.contains(&json!(unseen)), "{name}: {listed:?}");
            }
        }
        Expect::Batch { scored, failed } => {
            assert_eq!(status, 200, "{name}: {body:.300}");
            let results = body["results"].as_array().unwrap();
            let errors = results.iter().filter(|r| r.get("error").is_some()).count();
            assert_eq!((results.len() - errors, errors), (scored, failed), "{name}");
            for (index, result) in results.iter().enumerate() {
                assert_eq!(result["index"], index, "{name}");
                if let Some(error) = result.get("error") {
                    assert_eq!(error["status"], 422, "{name}");
                    assert_eq!(error["code"], "invalid_field", "{name}");
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_its_documented_status_and_never_a_5xx() {
    let server = TestServer::start(common::loaded_store(&common::shipped_model_root())).await;
    let client = common::client();
    let cases = cases();
    assert!(cases.len() >= 50, "only {} cases", cases.len());
    for case in &cases {
        check(&server, &client, case).await;
    }
    println!("{} hostile inputs answered as documented", cases.len());

    // The process is still healthy and scoring after all of it.
    let ok = client
        .post(server.url("/v1/score"))
        .json(&event())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    server.stop().await;
}

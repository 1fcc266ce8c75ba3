//! Every endpoint over a real socket, and the one error shape on every failure.

#[path = "support/common.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::TestServer;
use login_scorer::bundle::ModelStore;
use login_scorer::http::HttpConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn normal_event() -> Value {
    json!({
        "timestamp": "2020-02-03 12:44:19.260",
        "user_id": "5932501938287412564",
        "round_trip_time_ms": null,
        "ip_address": "84.48.61.135",
        "country": "NO",
        "region": "-",
        "city": "-",
        "asn": 15659,
        "user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_6)",
        "browser_name_and_version": "Chrome 86.0.4202",
        "os_name_and_version": "Mac OS X 10.14.6",
        "device_type": "desktop",
        "login_successful": true,
        "is_attack_ip": false
    })
}

async fn shipped_server() -> TestServer {
    TestServer::start(common::loaded_store(&common::shipped_model_root())).await
}

async fn post_json(server: &TestServer, path: &str, body: &Value) -> reqwest::Response {
    common::client()
        .post(server.url(path))
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Asserts the error shape and returns the message.
async fn expect_error(response: reqwest::Response, status: u16, code: &str) -> String {
    assert_eq!(response.status().as_u16(), status);
    assert!(response.headers().contains_key("x-request-id"));
    let body: Value = response.json().await.expect("error bodies are JSON");
    assert_eq!(body["error"]["status"], status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    body["error"]["message"]
        .as_str()
        .expect("a message")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn score_returns_a_complete_finite_response() {
    let server = shipped_server().await;
    let model = server.store.current().unwrap();
    let response = post_json(&server, "/v1/score", &normal_event()).await;
    assert_eq!(response.status(), StatusCode::OK);
    let header_id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();

    assert_eq!(body["request_id"], header_id);
    assert_eq!(body["user_id"], "5932501938287412564");
    assert_eq!(body["model"]["name"], model.manifest.name.as_str());
    assert_eq!(body["model"]["version"], model.version());
    let score = body["score"].as_f64().unwrap();
    let threshold = body["threshold"].as_f64().unwrap();
    let percentile = body["percentile"].as_f64().unwrap();
    assert!(score.is_finite() && score >= 0.0);
    assert_eq!(threshold, model.manifest.threshold);
    assert!((0.0..=100.0).contains(&percentile));
    assert_eq!(body["anomalous"], score >= threshold);
    let action = body["action"].as_str().unwrap();
    if score < threshold {
        assert_eq!(action, "allow");
    } else {
        assert!(action == "challenge" || action == "deny", "{action}");
    }

    let contributions = body["contributions"].as_array().unwrap();
    assert_eq!(contributions.len(), model.manifest.model.width);
    let errors: Vec<f64> = contributions
        .iter()
        .map(|c| c["squared_error"].as_f64().unwrap())
        .collect();
    assert!(
        errors.windows(2).all(|pair| pair[0] >= pair[1]),
        "largest first: {errors:?}"
    );
    let mean = errors.iter().sum::<f64>() / errors.len() as f64;
    assert!(
        (mean - score).abs() <= 1e-12 * score.max(1e-12),
        "contributions average to score"
    );
    assert_eq!(body["unseen"], json!([]));
    assert_eq!(body["missing"], json!([]));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_strings_and_epoch_millis_read_like_the_canonical_event() {
    let server = shipped_server().await;
    let canonical: Value = post_json(&server, "/v1/score", &normal_event())
        .await
        .json()
        .await
        .unwrap();
    let aliased = json!({
        "Login Timestamp": 1_580_733_859_260_i64,
        "User ID": 5932501938287412564_i64,
        "Country": "NO",
        "Device Type": "desktop",
        "Browser Name and Version": "Chrome 86.0.4202",
        "OS Name and Version": "Mac OS X 10.14.6",
        "Login Successful": "True",
        "Is Attack IP": "false",
        "ASN": "15659",
        "Round-Trip Time [ms]": "",
        "gateway_trace": {"ignored": ["unknown fields are ignored"]}
    });
    let other: Value = post_json(&server, "/v1/score", &aliased)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(other["score"], canonical["score"]);
    assert_eq!(other["user_id"], canonical["user_id"]);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_ids_cover_the_signed_range_and_echo_as_strings() {
    let server = shipped_server().await;
    for id in [
        json!(i64::MIN),
        json!(i64::MAX),
        json!("-9223372036854775808"),
        json!(0),
    ] {
        let mut event = normal_event();
        event["user_id"] = id.clone();
        let body: Value = post_json(&server, "/v1/score", &event)
            .await
            .json()
            .await
            .unwrap();
        let expected = match &id {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        assert_eq!(body["user_id"], expected.as_str());
    }
    let mut event = normal_event();
    event["user_id"] = json!(9223372036854775808_u64);
    let message = expect_error(
        post_json(&server, "/v1/score", &event).await,
        422,
        "invalid_field",
    )
    .await;
    assert!(message.contains("`user_id`"), "{message}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unseen_and_missing_features_are_listed() {
    let server = shipped_server().await;
    let mut event = normal_event();
    event["country"] = json!("Atlantis");
    event["device_type"] = json!("   ");
    event.as_object_mut().unwrap().remove("timestamp");
    let body: Value = post_json(&server, "/v1/score", &event)
        .await
        .json()
        .await
        .unwrap();
    assert!(body["score"].as_f64().unwrap().is_finite());
    assert_eq!(body["unseen"], json!(["country_code"]));
    let missing: Vec<&str> = body["missing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        missing.contains(&"device_type") && missing.contains(&"login_hours"),
        "{missing:?}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_keeps_order_and_isolates_bad_events() {
    let server = shipped_server().await;
    let single: Value = post_json(&server, "/v1/score", &normal_event())
        .await
        .json()
        .await
        .unwrap();
    let mut bad_type = normal_event();
    bad_type["login_successful"] = json!("maybe");
    let batch = json!({"events": [normal_event(), bad_type, 42, normal_event()]});

    let response = post_json(&server, "/v1/score/batch", &batch).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    for (index, result) in results.iter().enumerate() {
        assert_eq!(result["index"], index);
    }
    assert_eq!(results[0]["score"], single["score"]);
    assert_eq!(results[3]["score"], single["score"]);
    assert_eq!(results[1]["error"]["code"], "invalid_field");
    assert!(
        results[1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`login_successful`")
    );
    assert_eq!(results[2]["error"]["status"], 422);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_batch_is_scored_in_order() {
    let server = shipped_server().await;
    let events: Vec<Value> = (0..3000)
        .map(|i| {
            let mut event = normal_event();
            event["user_id"] = json!(i);
            event
        })
        .collect();
    let body: Value = post_json(&server, "/v1/score/batch", &json!({"events": events}))
        .await
        .json()
        .await
        .unwrap();
    let results = body["results"].as_array().unwrap();
    assert_eq!(results.len(), 3000);
    assert!(
        results
            .iter()
            .enumerate()
            .all(|(i, r)| r["user_id"] == i.to_string().as_str())
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_answer_413_in_the_error_shape() {
    let config = HttpConfig {
        max_batch_events: 3,
        max_event_bytes: 1024,
        ..HttpConfig::default()
    };
    let store = common::loaded_store(&common::shipped_model_root());
    let server = TestServer::start_with(store, config, None).await;

    let batch = json!({"events": [normal_event(), normal_event(), normal_event(), normal_event()]});
    let message = expect_error(
        post_json(&server, "/v1/score/batch", &batch).await,
        413,
        "batch_too_large",
    )
    .await;
    assert!(message.contains('3'), "{message}");

    let mut big = normal_event();
    big["user_agent"] = json!("x".repeat(4096));
    expect_error(
        post_json(&server, "/v1/score", &big).await,
        413,
        "payload_too_large",
    )
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_400_415_422_in_the_error_shape() {
    let server = shipped_server().await;
    let client = common::client();

    let no_type = client
        .post(server.url("/v1/score"))
        .body(normal_event().to_string())
        .send();
    expect_error(no_type.await.unwrap(), 415, "unsupported_media_type").await;
    let text = client
        .post(server.url("/v1/score"))
        .header("content-type", "text/plain")
        .body("{}");
    expect_error(text.send().await.unwrap(), 415, "unsupported_media_type").await;

    for malformed in ["{", "", "{\"country\": }", "nul"] {
        let request = client
            .post(server.url("/v1/score"))
            .header("content-type", "application/json")
            .body(malformed);
        expect_error(request.send().await.unwrap(), 400, "malformed_json").await;
    }

    let mut wrong = normal_event();
    wrong["timestamp"] = json!("the day before yesterday");
    let message = expect_error(
        post_json(&server, "/v1/score", &wrong).await,
        422,
        "invalid_field",
    )
    .await;
    assert!(message.contains("`timestamp`"), "{message}");

    let message = expect_error(
        post_json(&server, "/v1/score/batch", &json!({"items": []})).await,
        422,
        "invalid_request",
    )
    .await;
    assert!(message.contains("events"), "{message}");
    expect_error(
        post_json(&server, "/v1/score", &json!([1, 2])).await,
        422,
        "invalid_field",
    )
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_methods_use_the_error_shape() {
    let server = shipped_server().await;
    let client = common::client();
    expect_error(
        client.get(server.url("/nope")).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    let get_score = client.get(server.url("/v1/score")).send().await.unwrap();
    expect_error(get_score, 405, "method_not_allowed").await;
    let delete_model = client.delete(server.url("/v1/model")).send().await.unwrap();
    expect_error(delete_model, 405, "method_not_allowed").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_input_makes_a_500_or_a_panic() {
    let server = shipped_server().await;
    let client = common::client();
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let bodies = [
        deep,
        "{\"timestamp\": 1e400}".to_owned(),
        "{\"timestamp\": -99999999999999999999}".to_owned(),
        "{\"asn\": {\"a\": 1}, \"country\": [\"NO\"]}".to_owned(),
        "{\"login_successful\": 1}".to_owned(),
        "{\"round_trip_time_ms\": \"NaN\"}".to_owned(),
        "{\"country\": \"\\u0000\\ud83d\\ude00\", \"browser_name_and_version\": \" 9 \"}"
            .to_owned(),
        "\"just a string\"".to_owned(),
        "{}".to_owned(),
    ];
    for body in bodies {
        for path in ["/v1/score", "/v1/score/batch"] {
            let response = client
                .post(server.url(path))
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap();
            let status = response.status();
            assert!(status.as_u16() < 500, "{path} {body:.60}: {status}");
            let parsed: Value = response.json().await.expect("JSON body");
            assert!(parsed.is_object(), "{parsed}");
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_model_info_and_metrics() {
    let server = shipped_server().await;
    let client = common::client();
    let model = server.store.current().unwrap();

    let alive: Value = client
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(alive["status"], "alive");
    let ready = client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::OK);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["model"]["version"], model.version());

    let info: Value = client
        .get(server.url("/v1/model"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["name"], model.manifest.name.as_str());
    assert_eq!(info["version"], model.version());
    assert_eq!(info["threshold"], model.manifest.threshold);
    assert_eq!(info["reloads"]["ok"], 0);
    for key in [
        "kind",
        "created",
        "metrics",
        "loaded_at",
        "features",
        "threshold_percentile",
    ] {
        assert!(!info[key].is_null(), "{key} in {info}");
    }

    post_json(&server, "/v1/score", &normal_event()).await;
    let metrics = client.get(server.url("/metrics")).send().await.unwrap();
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = metrics.text().await.unwrap();
    for name in [
        "login_scorer_http_requests_total{route=\"/v1/score\",status=\"200\"}",
        "login_scorer_http_request_duration_seconds_bucket",
        "login_scorer_score_bucket",
        "login_scorer_serving_version",
        // No reload happened, yet both series exist for alerts to read.
        "login_scorer_reloads_total{result=\"ok\"} 0",
        "login_scorer_reloads_total{result=\"failed\"} 0",
    ] {
        assert!(text.contains(name), "{name} missing from /metrics");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_without_a_model() {
    let empty = tempfile::tempdir().unwrap();
    let store = Arc::new(ModelStore::new(empty.path(), common::load_options()));
    let server = TestServer::start(store).await;
    let client = common::client();

    let ready = client.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.headers()["retry-after"], "1");
    expect_error(ready, 503, "not_ready").await;
    expect_error(
        post_json(&server, "/v1/score", &normal_event()).await,
        503,
        "not_ready",
    )
    .await;
    let info = client.get(server.url("/v1/model")).send().await.unwrap();
    expect_error(info, 503, "not_ready").await;
    assert!(
        client
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_reload_needs_the_token_and_is_off_without_one() {
    let client = common::client();
    let off = shipped_server().await;
    let response = client
        .post(off.url("/admin/reload"))
        .bearer_auth("anything")
        .send()
        .await
        .unwrap();
    expect_error(response, 404, "not_found").await;
    off.stop().await;

    let store = common::loaded_store(&common::shipped_model_root());
    let on = TestServer::start_with(store, HttpConfig::default(), Some("s3cret")).await;
    let missing = client.post(on.url("/admin/reload")).send().await.unwrap();
    assert_eq!(missing.headers()["www-authenticate"], "Bearer");
    expect_error(missing, 401, "unauthorized").await;
    let wrong = client
        .post(on.url("/admin/reload"))
        .bearer_auth("s3cret!")
        .send()
        .await
        .unwrap();
    expect_error(wrong, 401, "unauthorized").await;
    let right = client
        .post(on.url("/admin/reload"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), StatusCode::OK);
    let body: Value = right.json().await.unwrap();
    assert_eq!(body["status"], "unchanged");
    // The scheme is case-insensitive; another scheme is not a bearer token.
    for (header, status) in [
        ("bearer s3cret", 200),
        ("Basic s3cret", 401),
        ("s3cret", 401),
    ] {
        let response = client
            .post(on.url("/admin/reload"))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), status, "{header}");
    }
    on.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_is_shed_with_503_and_retry_after() {
    let store = common::loaded_store(&common::shipped_model_root());
    let config = HttpConfig {
        max_in_flight: 1,
        ..HttpConfig::default()
    };
    let server = TestServer::start_with(store, config, None).await;

    // Hold the only slot: send the headers and half the body, then wait.
    let body = normal_event().to_string();
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut held = tokio::net::TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /v1/score HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    );
    held.write_all(head.as_bytes()).await.unwrap();
    held.write_all(&body.as_bytes()[..body.len() / 2])
        .await
        .unwrap();

    let deadline = tokio::time::Instant::now() + common::POLL_TIMEOUT;
    let shed = loop {
        let response = post_json(&server, "/v1/score", &normal_event()).await;
        if response.status() == StatusCode::SERVICE_UNAVAILABLE {
            break response;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the held request never took the slot"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(shed.headers()["retry-after"], "1");
    expect_error(shed, 503, "overloaded").await;
    // Probes are outside the limit.
    assert!(
        common::client()
            .get(server.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );

    held.write_all(&body.as_bytes()[body.len() / 2..])
        .await
        .unwrap();
    let mut answer = vec![0; 4096];
    let read = tokio::time::timeout(common::POLL_TIMEOUT, held.read(&mut answer))
        .await
        .unwrap()
        .unwrap();
    assert!(String::from_utf8_lossy(&answer[..read]).starts_with("HTTP/1.1 200"));
    drop(held);
    assert_eq!(
        post_json(&server, "/v1/score", &normal_event())
            .await
            .status(),
        StatusCode::OK
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_request_id_is_kept() {
    let server = shipped_server().await;
    let response = common::client()
        .post(server.url("/v1/score"))
        .header("x-request-id", "gateway-123")
        .json(&normal_event())
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "gateway-123");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["request_id"], "gateway-123");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_past_the_request_timeout_answers_408_and_finishes_in_the_background() {
    let scratch = tempfile::tempdir().unwrap();
    let shipped = common::latest_shipped_version();
    common::copy_version(&shipped, scratch.path(), 1);
    let store = common::loaded_store(scratch.path());
    // Validating a bundle (golden rows, a session build) takes far longer than 1 ms.
    let config = HttpConfig {
        request_timeout: Duration::from_millis(1),
        ..HttpConfig::default()
    };
    let server = TestServer::start_with(store, config, Some("t0ken")).await;
    common::copy_version(&shipped, scratch.path(), 2);

    let response = common::client()
        .post(server.url("/admin/reload"))
        .bearer_auth("t0ken")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_TIMEOUT);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "request_timeout");

    let deadline = tokio::time::Instant::now() + common::POLL_TIMEOUT;
    while server.store.current().unwrap().version() != 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the reload never finished"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_array_sent_as_a_batch_is_named_as_such() {
    let server = TestServer::start(common::loaded_store(&common::shipped_model_root())).await;
    let response = post_json(&server, "/v1/score/batch", &json!([normal_event()])).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_request");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("must be a JSON object"), "{message}");
    server.stop().await;
}

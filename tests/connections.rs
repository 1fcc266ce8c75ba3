//! How admitted connections are served (src/http/server.rs): a stalled upload times
//! out, an answer given before the body was read says the connection closes, a client
//! that shuts its write side still gets its answer, and a request head has a limit.

#[path = "support/common.rs"]
mod common;

use std::time::Duration;

use common::TestServer;
use login_scorer::http::HttpConfig;
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn shipped_server() -> TestServer {
    TestServer::start(common::loaded_store(&common::shipped_model_root())).await
}

/// A server over the shipped bundle with one scoring request in flight at most.
async fn single_slot_server(request_timeout: Duration) -> TestServer {
    let store = common::loaded_store(&common::shipped_model_root());
    let config = HttpConfig {
        max_in_flight: 1,
        request_timeout,
        ..HttpConfig::default()
    };
    TestServer::start_with(store, config, None).await
}

fn address(server: &TestServer) -> String {
    server.base.trim_start_matches("http://").to_owned()
}

/// A scoring request that promises 1,000 bytes of body, sends a few and stalls.
async fn stalled_upload(server: &TestServer) -> TcpStream {
    let address = address(server);
    let mut stalled = TcpStream::connect(&address).await.unwrap();
    let head = format!(
        "POST /v1/score HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
         content-length: 1000\r\n\r\n{{\"country\":"
    );
    stalled.write_all(head.as_bytes()).await.unwrap();
    stalled
}

async fn post(server: &TestServer, path: &str, body: String) -> reqwest::Response {
    common::client()
        .post(server.url(path))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

fn an_event() -> String {
    common::desktop_login(7).to_string()
}

/// Reads the first bytes the server sends on `stream`, or "" when it closes.
async fn first_answer(stream: &mut TcpStream) -> String {
    let mut answer = vec![0; 4096];
    let read = tokio::time::timeout(common::POLL_TIMEOUT, stream.read(&mut answer))
        .await
        .unwrap()
        .unwrap_or(0);
    String::from_utf8_lossy(&answer[..read]).into_owned()
}

/// Sends `wire` on a fresh connection, optionally shuts the write side, and reads until
/// the server closes or answers.
async fn raw_exchange(server: &TestServer, wire: &[u8], half_close: bool) -> String {
    let mut stream = TcpStream::connect(address(server)).await.unwrap();
    stream.write_all(wire).await.unwrap();
    if half_close {
        stream.shutdown().await.unwrap();
    }
    first_answer(&mut stream).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_times_out_with_408_and_frees_its_slot() {
    let server = single_slot_server(Duration::from_millis(300)).await;
    let mut stalled = stalled_upload(&server).await;
    let answer = first_answer(&mut stalled).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");

    // The slot is free again.
    let response = post(&server, "/v1/score", an_event()).await;
    assert_eq!(response.status(), StatusCode::OK);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_given_before_the_body_was_read_says_the_connection_closes() {
    let server = single_slot_server(HttpConfig::default().request_timeout).await;
    let closes = |response: &reqwest::Response| {
        response
            .headers()
            .get("connection")
            .is_some_and(|value| value == "close")
    };
    let big_body = format!("{{\"country\": \"{}\"}}", "N".repeat(60_000));

    // A body sent to a path that does not exist is never read.
    let response = post(&server, "/nope", big_body.clone()).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(closes(&response), "{:?}", response.headers());

    // A stalled upload holds the one in-flight slot, so the next is shed unread.
    let stalled = stalled_upload(&server).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let response = post(&server, "/v1/score", big_body).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(closes(&response), "{:?}", response.headers());
    drop(stalled);

    // A body read to its end keeps the connection.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let response = post(&server, "/v1/score", an_event()).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(!closes(&response), "{:?}", response.headers());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_shuts_its_write_side_still_gets_its_answer() {
    let server = shipped_server().await;
    let event = an_event();
    let request = format!(
        "POST /v1/score HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n\r\n{event}",
        event.len()
    );
    // Whether the end of stream reaches the server before or after the request is
    // parsed varies, so try several times.
    for _ in 0..20 {
        let answer = raw_exchange(&server, request.as_bytes(), true).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_head_is_refused_with_431_once_it_passes_64_kib() {
    let server = shipped_server().await;
    // No blank line: the head never ends, so only the buffer limit answers it.
    let endless = format!(
        "GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {}",
        "a".repeat(70 * 1024)
    );
    let answer = raw_exchange(&server, endless.as_bytes(), false).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    let fits = format!(
        "GET /healthz HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "a".repeat(60 * 1024)
    );
    let answer = raw_exchange(&server, fits.as_bytes(), false).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    server.stop().await;
}

//! The HTTP floor: the cheapest server that does what login-scorer's HTTP
//! layer must do for every request (accept the connection, read and parse the
//! JSON event, answer with a JSON body of the same size) and no scoring.
//! The gap between it and login-scorer is what scoring and the service's own
//! layers cost.
//!
//! Run with:
//!   cargo bench --bench floor -- --listen 127.0.0.1:8081 --response-file answer.json

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, ensure};
use axum::Router;
use axum::body::Bytes;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use clap::Parser;
use serde_json::Value;

/// Answer used without `--response-file`: a score response of typical shape.
/// `compare.sh` passes a response captured from login-scorer instead, so the
/// floor sends exactly as many bytes as the real service.
const EXAMPLE_RESPONSE: &str = concat!(
    r#"{"request_id":"00000000-0000-0000-0000-000000000000","#,
    r#""user_id":"-4324475583306591935","score":0.0123,"threshold":0.0456,"#,
    r#""anomalous":false,"percentile":88.1,"action":"allow","contributions":["#,
    r#"{"feature":"country_code","squared_error":0.0001},"#,
    r#"{"feature":"device_type","squared_error":0.0002},"#,
    r#"{"feature":"is_login_success","squared_error":0.0003},"#,
    r#"{"feature":"is_attack_ip","squared_error":0.0004},"#,
    r#"{"feature":"login_hours","squared_error":0.0005},"#,
    r#"{"feature":"login_day","squared_error":0.0006},"#,
    r#"{"feature":"browser_name","squared_error":0.0007},"#,
    r#"{"feature":"os_name","squared_error":0.0008}],"unseen":[],"missing":[],"#,
    r#""model":{"name":"rba-autoencoder","version":1}}"#,
);

/// Serves POST /v1/score with a fixed answer after parsing the event, and
/// GET /readyz.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Address to listen on; must be a loopback address.
    #[arg(long, env = "FLOOR_LISTEN", default_value = "127.0.0.1:8081")]
    listen: SocketAddr,

    /// File whose bytes are the answer to every scoring request.
    #[arg(long, env = "FLOOR_RESPONSE_FILE")]
    response_file: Option<PathBuf>,

    /// Passed by `cargo bench` to every bench binary; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        args.listen.ip().is_loopback(),
        "refusing to listen on non-loopback {}",
        args.listen
    );

    let answer = match &args.response_file {
        Some(path) => std::fs::read(path)
            .with_context(|| format!("reading {}", path.display()))?
            .into(),
        None => Bytes::from_static(EXAMPLE_RESPONSE.as_bytes()),
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    eprintln!(
        "floor listening on {} ({} byte answer)",
        listener.local_addr()?,
        answer.len()
    );

    axum::serve(listener, router(answer))
        .with_graceful_shutdown(async {
            // An error here means no signal handler; then only a kill stops the server.
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("serving")
}

fn router(answer: Bytes) -> Router {
    Router::new()
        .route(
            "/v1/score",
            post(move |body: Bytes| score(body, answer.clone())),
        )
        .route("/readyz", get(|| async { "ready" }))
}

/// Parses the event as the service does (a JSON value that must be an object)
/// and answers with the fixed body.
async fn score(body: Bytes, answer: Bytes) -> impl IntoResponse {
    match serde_json::from_slice::<Value>(&body) {
        Ok(event) if event.is_object() => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            answer,
        ),
        _ => (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            Bytes::from_static(br#"{"error":"invalid event","error_type":"invalid_event"}"#),
        ),
    }
}

//! Connections over the connection cap, answered without hyper or the router.
//!
//! A connection accepted while every `--max-connections` slot is taken comes here. Each
//! request on it is framed with httparse, its body skipped unread, and answered with a
//! prebuilt 503 `overloaded` carrying Retry-After. That costs a few microseconds where a
//! request through hyper and the router costs tens, so under overload the CPU goes to the
//! admitted connections instead of to refusing the others, and their latency stays put.
//!
//! Between requests the connection asks for a slot again; once one is free it is handed
//! to hyper before any byte of its next request is read. A request this module cannot
//! skip cheaply (chunked, `Expect: 100-continue`, too large, malformed, HTTP/1.0) still
//! gets the 503, and then the connection is closed.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::{Instant, timeout_at};

use super::error::{ApiError, RETRY_AFTER_SECONDS};
use crate::telemetry;

/// Longest request head read; a longer one is answered and the connection closed.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most header lines parsed in one request head.
const MAX_HEADERS: usize = 64;
/// Largest body skipped to keep the connection open (the default batch limit is 4 MiB).
const MAX_SKIPPED_BODY_BYTES: u64 = 8 * 1024 * 1024;
/// Size of each read.
const READ_CHUNK_BYTES: usize = 8 * 1024;
/// After answering on a connection about to close, how long and how much of what the
/// client is still sending is read and dropped, so closing does not reset the
/// connection and destroy the answer before the client reads it.
const LINGER: Duration = Duration::from_secs(1);
const LINGER_BYTES: usize = 1024 * 1024;

/// Where a shed connection ended.
pub enum Shed {
    /// A slot freed up between requests: serve the connection normally.
    Admitted(TcpStream, OwnedSemaphorePermit),
    /// The client left, stalled past the timeout, or shutdown began.
    Closed,
}

/// Answers requests on connections over the cap until they get a slot or close.
#[derive(Clone)]
pub struct Shedder {
    slots: Arc<Semaphore>,
    timeout: Duration,
    keep_alive: Arc<[u8]>,
    close: Arc<[u8]>,
}

impl Shedder {
    /// A shedder for connections waiting on `slots`. `timeout` bounds both the idle wait
    /// for a request and the reading of one, as hyper's header timeout does.
    pub fn new(slots: Arc<Semaphore>, timeout: Duration) -> Shedder {
        Shedder {
            slots,
            timeout,
            keep_alive: overloaded_response(true).into(),
            close: overloaded_response(false).into(),
        }
    }

    /// Answers each request on `stream` with 503 until a slot frees up between requests,
    /// the connection ends, or `stop` turns true.
    pub async fn run(&self, stream: TcpStream, mut stop: watch::Receiver<bool>) -> Shed {
        tokio::select! {
            shed = self.serve(stream) => shed,
            _ = stop.wait_for(|stop| *stop) => Shed::Closed,
        }
    }

    async fn serve(&self, mut stream: TcpStream) -> Shed {
        let mut buffer = BytesMut::new();
        loop {
            if buffer.is_empty() {
                let idle_until = Instant::now() + self.timeout;
                if !matches!(timeout_at(idle_until, stream.readable()).await, Ok(Ok(()))) {
                    return Shed::Closed;
                }
                if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
                    return Shed::Admitted(stream, permit);
                }
            }
            let deadline = Instant::now() + self.timeout;
            let framed = timeout_at(deadline, read_request(&mut stream, &mut buffer)).await;
            let keep_alive = match framed {
                Ok(Ok(Some(Framing::KeepAlive))) => true,
                Ok(Ok(Some(Framing::Close))) => false,
                // The client closed between requests, its connection failed, or it
                // stalled mid-request past the timeout (closed unanswered, as hyper does).
                Ok(Ok(None) | Err(_)) | Err(_) => return Shed::Closed,
            };
            count_shed();
            let answer = if keep_alive {
                &self.keep_alive
            } else {
                &self.close
            };
            let written = timeout_at(deadline, stream.write_all(answer)).await;
            if !matches!(written, Ok(Ok(()))) {
                return Shed::Closed;
            }
            if !keep_alive {
                linger_close(stream, buffer).await;
                return Shed::Closed;
            }
        }
    }
}

/// Whether the connection can stay open after a request was read.
#[derive(Debug, PartialEq, Eq)]
enum Framing {
    /// The whole request, body included, was consumed from the stream.
    KeepAlive,
    /// Answer, then close: the rest of the request was not (or cannot be) skipped.
    Close,
}

/// Reads one request from `buffer` and `stream`, leaving any bytes after it in `buffer`.
/// `Ok(None)` is a clean end of stream before a request began.
async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
    buffer: &mut BytesMut,
) -> std::io::Result<Option<Framing>> {
    let head = loop {
        match parse_head(buffer) {
            Head::Complete(head) => break head,
            Head::Invalid => return Ok(Some(Framing::Close)),
            Head::Partial if buffer.len() >= MAX_HEAD_BYTES => return Ok(Some(Framing::Close)),
            Head::Partial => {
                buffer.reserve(READ_CHUNK_BYTES);
                if stream.read_buf(buffer).await? == 0 {
                    return if buffer.is_empty() {
                        Ok(None)
                    } else {
                        Ok(Some(Framing::Close))
                    };
                }
            }
        }
    };
    buffer.advance(head.length);
    if !head.keep_alive {
        return Ok(Some(Framing::Close));
    }
    skip_body(stream, buffer, head.body_length).await
}

/// Drops `length` body bytes, first from `buffer`, then from `stream` (read through
/// `buffer`, which is left holding only what followed the body).
async fn skip_body<S: AsyncRead + Unpin>(
    stream: &mut S,
    buffer: &mut BytesMut,
    length: u64,
) -> std::io::Result<Option<Framing>> {
    let mut remaining = length;
    loop {
        let buffered = usize::try_from(remaining).map_or(buffer.len(), |n| n.min(buffer.len()));
        buffer.advance(buffered);
        remaining -= buffered as u64;
        if remaining == 0 {
            return Ok(Some(Framing::KeepAlive));
        }
        buffer.reserve(READ_CHUNK_BYTES);
        if stream.read_buf(buffer).await? == 0 {
            return Ok(Some(Framing::Close));
        }
    }
}

/// What a request head says about framing.
#[derive(Debug, PartialEq, Eq)]
struct RequestHead {
    /// Bytes of the head, blank line included.
    length: usize,
    /// Content-Length, or 0 without one.
    body_length: u64,
    /// HTTP/1.1 without `Connection: close`, with a body this module can skip.
    keep_alive: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Head {
    Complete(RequestHead),
    Partial,
    Invalid,
}

fn parse_head(bytes: &[u8]) -> Head {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let length = match request.parse(bytes) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Head::Partial,
        Err(_) => return Head::Invalid,
    };
    let mut keep_alive = request.version == Some(1);
    let mut body_length: Option<u64> = None;
    for header in request.headers.iter() {
        let value = header.value;
        if header.name.eq_ignore_ascii_case("content-length") {
            let parsed = std::str::from_utf8(value)
                .ok()
                .and_then(|text| text.trim().parse::<u64>().ok());
            match (parsed, body_length) {
                (None, _) => return Head::Invalid,
                (Some(new), Some(old)) if new != old => return Head::Invalid,
                (Some(new), _) => body_length = Some(new),
            }
        } else if header.name.eq_ignore_ascii_case("transfer-encoding")
            || header.name.eq_ignore_ascii_case("expect")
            || (header.name.eq_ignore_ascii_case("connection") && names_close(value))
        {
            keep_alive = false;
        }
    }
    let body_length = body_length.unwrap_or(0);
    if body_length > MAX_SKIPPED_BODY_BYTES {
        keep_alive = false;
    }
    Head::Complete(RequestHead {
        length,
        body_length,
        keep_alive,
    })
}

fn names_close(value: &[u8]) -> bool {
    value
        .split(|&byte| byte == b',')
        .any(|token| token.trim_ascii().eq_ignore_ascii_case(b"close"))
}

/// Half-closes, then reads and drops what the client still sends for a bounded time.
async fn linger_close<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, mut buffer: BytesMut) {
    if stream.shutdown().await.is_err() {
        return;
    }
    let until = Instant::now() + LINGER;
    let mut dropped = 0;
    while dropped < LINGER_BYTES {
        buffer.clear();
        buffer.reserve(READ_CHUNK_BYTES);
        match timeout_at(until, stream.read_buf(&mut buffer)).await {
            Ok(Ok(read)) if read > 0 => dropped += read,
            _ => return,
        }
    }
}

fn count_shed() {
    metrics::counter!(telemetry::HTTP_REQUESTS, "route" => "over_capacity", "status" => "503")
        .increment(1);
}

/// The whole HTTP/1.1 answer to a shed request: the body and Retry-After that
/// [`ApiError::Overloaded`] has everywhere else.
fn overloaded_response(keep_alive: bool) -> Vec<u8> {
    let body = ApiError::Overloaded.body_json();
    let connection = if keep_alive { "keep-alive" } else { "close" };
    let mut response = format!(
        "HTTP/1.1 503 Service Unavailable\r\n\
         content-type: application/json\r\n\
         retry-after: {RETRY_AFTER_SECONDS}\r\n\
         connection: {connection}\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(&body);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(head: &[u8]) -> RequestHead {
        match parse_head(head) {
            Head::Complete(head) => head,
            other => panic!("expected a complete head, got {other:?}"),
        }
    }

    const POST: &[u8] = b"POST /v1/score HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\n";

    #[test]
    fn a_sized_http11_request_keeps_the_connection() {
        let head = complete(POST);
        assert_eq!(head.length, POST.len());
        assert_eq!(head.body_length, 5);
        assert!(head.keep_alive);
    }

    #[test]
    fn what_cannot_be_skipped_cheaply_closes_the_connection() {
        let closing: [&[u8]; 5] = [
            b"GET / HTTP/1.0\r\n\r\n",
            b"GET / HTTP/1.1\r\nconnection: keep-alive, Close\r\n\r\n",
            b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
            b"POST / HTTP/1.1\r\ncontent-length: 9\r\nexpect: 100-continue\r\n\r\n",
            b"POST / HTTP/1.1\r\ncontent-length: 99999999999\r\n\r\n",
        ];
        for head in closing {
            assert!(
                !complete(head).keep_alive,
                "{}",
                String::from_utf8_lossy(head)
            );
        }
    }

    #[test]
    fn bad_or_conflicting_lengths_are_invalid_and_a_cut_head_is_partial() {
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\nhost"), Head::Partial);
        assert_eq!(parse_head(b"\x01\x02 nonsense\r\n\r\n"), Head::Invalid);
        let conflicting = b"POST / HTTP/1.1\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n";
        assert_eq!(parse_head(conflicting), Head::Invalid);
        assert_eq!(
            parse_head(b"POST / HTTP/1.1\r\ncontent-length: -1\r\n\r\n"),
            Head::Invalid
        );
    }

    #[tokio::test]
    async fn a_request_and_its_body_are_consumed_leaving_the_next_one() {
        let mut wire = POST.to_vec();
        wire.extend_from_slice(b"hello");
        wire.extend_from_slice(b"GET /next");
        let (mut client, mut server) = tokio::io::duplex(64);
        let writer = tokio::spawn(async move { client.write_all(&wire).await });
        let mut buffer = BytesMut::new();
        let framed = read_request(&mut server, &mut buffer).await.unwrap();
        assert_eq!(framed, Some(Framing::KeepAlive));
        writer.await.unwrap().unwrap();
        let mut rest = buffer.to_vec();
        server.read_to_end(&mut rest).await.unwrap();
        assert_eq!(rest, b"GET /next");
    }

    #[tokio::test]
    async fn a_body_cut_short_or_a_stream_ending_mid_head_closes() {
        let (mut client, mut server) = tokio::io::duplex(1024);
        client.write_all(POST).await.unwrap();
        client.write_all(b"he").await.unwrap();
        drop(client);
        let framed = read_request(&mut server, &mut BytesMut::new()).await;
        assert_eq!(framed.unwrap(), Some(Framing::Close));

        let (mut client, mut server) = tokio::io::duplex(1024);
        client.write_all(b"POST /v1/sc").await.unwrap();
        drop(client);
        let framed = read_request(&mut server, &mut BytesMut::new()).await;
        assert_eq!(framed.unwrap(), Some(Framing::Close));

        let (client, mut server) = tokio::io::duplex(1024);
        drop(client);
        let framed = read_request(&mut server, &mut BytesMut::new()).await;
        assert_eq!(framed.unwrap(), None);
    }

    #[tokio::test]
    async fn an_endless_head_stops_at_the_limit() {
        let (mut client, mut server) = tokio::io::duplex(4096);
        let writer = tokio::spawn(async move {
            let filler = vec![b'a'; 1024];
            let _ = client.write_all(b"GET /").await;
            for _ in 0..64 {
                if client.write_all(&filler).await.is_err() {
                    break;
                }
            }
        });
        let mut buffer = BytesMut::new();
        let framed = read_request(&mut server, &mut buffer).await.unwrap();
        assert_eq!(framed, Some(Framing::Close));
        assert!(buffer.len() <= MAX_HEAD_BYTES + READ_CHUNK_BYTES);
        drop(server);
        writer.await.unwrap();
    }

    #[test]
    fn the_answer_is_the_overloaded_error_with_retry_after() {
        let text = String::from_utf8(overloaded_response(true)).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains(&format!("retry-after: {RETRY_AFTER_SECONDS}\r\n")));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let body: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["error"]["code"], "overloaded");
        assert_eq!(body["error"]["status"], 503);
        assert!(
            String::from_utf8(overloaded_response(false))
                .unwrap()
                .contains("connection: close")
        );
    }
}

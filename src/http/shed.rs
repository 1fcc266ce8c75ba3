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
//! gets the 503, and then the connection is closed. Each answer carries the request's
//! `x-request-id`, or a new one, as the router's answers do.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::{Instant, timeout_at};
use uuid::Uuid;

use super::error::{ApiError, RETRY_AFTER_SECONDS};
use crate::telemetry;

/// Longest request head read; a longer one is answered and the connection closed.
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Longest client `x-request-id` echoed; a longer or unprintable one is replaced.
const MAX_REQUEST_ID_BYTES: usize = 128;
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
    keep_alive: Arc<Answer>,
    close: Arc<Answer>,
}

impl Shedder {
    /// A shedder for connections waiting on `slots`. `timeout` bounds both the idle wait
    /// for a request and the reading of one, as hyper's header timeout does.
    pub fn new(slots: Arc<Semaphore>, timeout: Duration) -> Shedder {
        Shedder {
            slots,
            timeout,
            keep_alive: Arc::new(Answer::overloaded(true)),
            close: Arc::new(Answer::overloaded(false)),
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
            skip_empty_lines(&mut buffer);
            if buffer.is_empty() {
                match self.next_bytes_or_slot(&mut stream, &mut buffer).await {
                    Idle::Bytes => continue,
                    Idle::Slot(permit) => return Shed::Admitted(stream, permit),
                    Idle::Closed => return Shed::Closed,
                }
            }
            let deadline = Instant::now() + self.timeout;
            let framed = timeout_at(deadline, read_request(&mut stream, &mut buffer)).await;
            let request = match framed {
                Ok(Ok(Some(request))) => request,
                // The client closed between requests, its connection failed, or it
                // stalled mid-request past the timeout (closed unanswered, as hyper does).
                Ok(Ok(None) | Err(_)) | Err(_) => return Shed::Closed,
            };
            count_shed();
            let keep_alive = request.framing == Framing::KeepAlive;
            let template = if keep_alive {
                &self.keep_alive
            } else {
                &self.close
            };
            let answer = template.with_request_id(request.request_id.as_deref());
            let written = timeout_at(deadline, stream.write_all(&answer)).await;
            if !matches!(written, Ok(Ok(()))) {
                return Shed::Closed;
            }
            if !keep_alive {
                linger_close(stream, buffer).await;
                return Shed::Closed;
            }
        }
    }

    /// Waits, at most the timeout, for the next bytes on an idle connection. A slot free
    /// when they come admits the connection before a byte is read. Readiness can be
    /// stale (it outlives a read that exactly filled the buffer): then nothing is read,
    /// and the wait and the check for a slot start again.
    async fn next_bytes_or_slot(&self, stream: &mut TcpStream, buffer: &mut BytesMut) -> Idle {
        let idle_until = Instant::now() + self.timeout;
        loop {
            if !matches!(timeout_at(idle_until, stream.readable()).await, Ok(Ok(()))) {
                return Idle::Closed;
            }
            if let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() {
                return Idle::Slot(permit);
            }
            buffer.reserve(READ_CHUNK_BYTES);
            match stream.try_read_buf(buffer) {
                Ok(0) => return Idle::Closed,
                Ok(_) => return Idle::Bytes,
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return Idle::Closed,
            }
        }
    }
}

/// How the wait on an idle connection ended.
enum Idle {
    /// The next request's first bytes are in the buffer.
    Bytes,
    /// A slot was free before anything was read.
    Slot(OwnedSemaphorePermit),
    Closed,
}

/// Drops empty lines before a request, which RFC 9112 lets a server ignore (some
/// clients send a CRLF after a body).
fn skip_empty_lines(buffer: &mut BytesMut) {
    loop {
        if buffer.starts_with(b"\r\n") {
            buffer.advance(2);
        } else if buffer.starts_with(b"\n") {
            buffer.advance(1);
        } else {
            return;
        }
    }
}

/// A request read from a shed connection.
#[derive(Debug, PartialEq, Eq)]
struct ShedRequest {
    framing: Framing,
    /// The client's `x-request-id`, when it is short printable ASCII.
    request_id: Option<String>,
}

impl ShedRequest {
    /// A request whose head could not be read to the end: answer, then close.
    const UNREADABLE: ShedRequest = ShedRequest {
        framing: Framing::Close,
        request_id: None,
    };
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
) -> std::io::Result<Option<ShedRequest>> {
    let head = loop {
        match parse_head(buffer) {
            Head::Complete(head) => break head,
            Head::Invalid => return Ok(Some(ShedRequest::UNREADABLE)),
            Head::Partial if buffer.len() >= MAX_HEAD_BYTES => {
                return Ok(Some(ShedRequest::UNREADABLE));
            }
            Head::Partial => {
                buffer.reserve(READ_CHUNK_BYTES);
                if stream.read_buf(buffer).await? == 0 {
                    return Ok((!buffer.is_empty()).then_some(ShedRequest::UNREADABLE));
                }
            }
        }
    };
    buffer.advance(head.length);
    let framing = if head.keep_alive {
        skip_body(stream, buffer, head.body_length).await?
    } else {
        Framing::Close
    };
    Ok(Some(ShedRequest {
        framing,
        request_id: head.request_id,
    }))
}

/// Drops `length` body bytes, first from `buffer`, then from `stream` (read through
/// `buffer`, which is left holding only what followed the body).
async fn skip_body<S: AsyncRead + Unpin>(
    stream: &mut S,
    buffer: &mut BytesMut,
    length: u64,
) -> std::io::Result<Framing> {
    let mut remaining = length;
    loop {
        let buffered = usize::try_from(remaining).map_or(buffer.len(), |n| n.min(buffer.len()));
        buffer.advance(buffered);
        remaining -= buffered as u64;
        if remaining == 0 {
            return Ok(Framing::KeepAlive);
        }
        buffer.reserve(READ_CHUNK_BYTES);
        if stream.read_buf(buffer).await? == 0 {
            return Ok(Framing::Close);
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
    /// The client's `x-request-id`, when it is short printable ASCII.
    request_id: Option<String>,
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
    let mut request_id = None;
    for header in request.headers.iter() {
        let value = header.value;
        if header.name.eq_ignore_ascii_case("x-request-id") {
            request_id = printable_id(value);
        } else if header.name.eq_ignore_ascii_case("content-length") {
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
        request_id,
    })
}

/// A request id safe to echo in a header: 1 to 128 printable ASCII characters.
fn printable_id(value: &[u8]) -> Option<String> {
    let printable = !value.is_empty()
        && value.len() <= MAX_REQUEST_ID_BYTES
        && value.iter().all(|byte| byte.is_ascii_graphic());
    printable.then(|| String::from_utf8_lossy(value).into_owned())
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

/// The HTTP/1.1 answer to a shed request, all but its request id: the body and
/// Retry-After that [`ApiError::Overloaded`] has everywhere else.
struct Answer {
    /// Status line and headers, without the request id and the blank line.
    head: Vec<u8>,
    body: Vec<u8>,
}

impl Answer {
    fn overloaded(keep_alive: bool) -> Answer {
        let body = ApiError::Overloaded.body_json();
        let connection = if keep_alive { "keep-alive" } else { "close" };
        let head = format!(
            "HTTP/1.1 503 Service Unavailable\r\n\
             content-type: application/json\r\n\
             retry-after: {RETRY_AFTER_SECONDS}\r\n\
             connection: {connection}\r\n\
             content-length: {}\r\n",
            body.len()
        );
        Answer {
            head: head.into_bytes(),
            body,
        }
    }

    /// The whole answer, echoing `request_id` or carrying a new one.
    fn with_request_id(&self, request_id: Option<&str>) -> Vec<u8> {
        let generated;
        let id = match request_id {
            Some(id) => id,
            None => {
                generated = Uuid::new_v4().to_string();
                &generated
            }
        };
        let mut answer = Vec::with_capacity(self.head.len() + id.len() + self.body.len() + 20);
        answer.extend_from_slice(&self.head);
        answer.extend_from_slice(b"x-request-id: ");
        answer.extend_from_slice(id.as_bytes());
        answer.extend_from_slice(b"\r\n\r\n");
        answer.extend_from_slice(&self.body);
        answer
    }
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
        assert_eq!(framing(framed), Some(Framing::KeepAlive));
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
        assert_eq!(framing(framed.unwrap()), Some(Framing::Close));

        let (mut client, mut server) = tokio::io::duplex(1024);
        client.write_all(b"POST /v1/sc").await.unwrap();
        drop(client);
        let framed = read_request(&mut server, &mut BytesMut::new()).await;
        assert_eq!(framing(framed.unwrap()), Some(Framing::Close));

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
        assert_eq!(framing(framed), Some(Framing::Close));
        assert!(buffer.len() <= MAX_HEAD_BYTES + READ_CHUNK_BYTES);
        drop(server);
        writer.await.unwrap();
    }

    fn framing(request: Option<ShedRequest>) -> Option<Framing> {
        request.map(|request| request.framing)
    }

    fn split(answer: &[u8]) -> (String, serde_json::Value) {
        let text = String::from_utf8(answer.to_vec()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}\r\n", body.len())));
        (head.to_owned(), serde_json::from_str(body).unwrap())
    }

    #[test]
    fn the_answer_is_the_overloaded_error_with_retry_after_and_a_request_id() {
        let (head, body) = split(&Answer::overloaded(true).with_request_id(Some("gw-7")));
        assert!(head.starts_with("HTTP/1.1 503 "));
        assert!(head.contains(&format!("retry-after: {RETRY_AFTER_SECONDS}\r\n")));
        assert!(head.contains("connection: keep-alive\r\n"));
        assert!(head.ends_with("x-request-id: gw-7"));
        assert_eq!(body["error"]["code"], "overloaded");
        assert_eq!(body["error"]["status"], 503);

        let (head, _) = split(&Answer::overloaded(false).with_request_id(None));
        assert!(head.contains("connection: close\r\n"));
        let generated = head.rsplit_once("x-request-id: ").unwrap().1;
        assert!(Uuid::parse_str(generated).is_ok(), "{generated}");
    }

    #[test]
    fn only_a_short_printable_request_id_is_echoed() {
        let id = |value: &str| {
            let head = format!("GET / HTTP/1.1\r\nx-request-id: {value}\r\n\r\n");
            complete(head.as_bytes()).request_id
        };
        assert_eq!(id("gw-7"), Some("gw-7".to_owned()));
        assert_eq!(id(&"a".repeat(200)), None);
        assert_eq!(id("two words"), None);
        assert_eq!(complete(POST).request_id, None);
    }

    #[test]
    fn empty_lines_before_a_request_are_dropped() {
        let mut buffer = BytesMut::from(&b"\r\n\n\r\nGET / HTTP/1.1\r\n"[..]);
        skip_empty_lines(&mut buffer);
        assert_eq!(&buffer[..], b"GET / HTTP/1.1\r\n");
        let mut only_lines = BytesMut::from(&b"\r\n\r\n"[..]);
        skip_empty_lines(&mut only_lines);
        assert!(only_lines.is_empty());
    }
}

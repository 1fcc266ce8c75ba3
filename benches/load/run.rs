//! The connections that send the load: closed loop (send, wait, send) or
//! open loop (a pacer thread releases requests on a fixed schedule).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use reqwest::{Client, Url};
use tokio::sync::{Mutex, mpsc};

use crate::report::{ConnectionTally, Outcome};

/// Pause after a transport failure so a dead server is not polled in a hot loop.
const FAILURE_BACKOFF: Duration = Duration::from_millis(1);

/// How long after the window an open loop still sends requests scheduled inside
/// it. A server only slightly behind drains its queue (the wait counts as
/// latency); what is still queued after this was never sent.
const OPEN_LOOP_DRAIN: Duration = Duration::from_secs(1);

/// Everything a run needs, fixed before it starts.
pub struct Plan {
    pub url: Url,
    pub bodies: Vec<Bytes>,
    pub connections: usize,
    pub warmup: Duration,
    pub measure: Duration,
    pub max_requests: Option<u64>,
    pub rate_per_s: Option<f64>,
    pub timeout: Duration,
    /// Set to end the run early (Ctrl-C, or a test whose work under load is done);
    /// the report covers what was measured until then.
    pub stop: Arc<AtomicBool>,
    /// Sees every measured answer, for checks beyond status and latency.
    pub observer: Option<Observer>,
}

/// A callback given each measured answer.
pub type Observer = Arc<dyn Fn(&Answer) + Send + Sync>;

/// One request as the client saw it.
// NOTE: the command line sets no observer; tests/reliability.rs reads every field.
#[allow(dead_code)]
pub struct Answer {
    /// When it was due: sent, or (open loop) scheduled.
    pub due: Instant,
    pub done: Instant,
    pub outcome: Outcome,
    /// Empty after a transport failure.
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// What the connections measured, and how many scheduled requests (open loop)
/// were still waiting for a free connection when the drain after the window ended.
pub struct RunResult {
    pub tallies: Vec<ConnectionTally>,
    pub missed: u64,
    /// The request cap closed the window before its planned end.
    pub capped: bool,
}

/// Which part of the run a request belongs to.
#[derive(Clone, Copy, PartialEq)]
enum Phase {
    Warmup,
    Measured,
    Over,
}

struct Shared {
    plan: Plan,
    measure_start: Instant,
    deadline: Instant,
    next_body: AtomicUsize,
    measured_sent: AtomicU64,
    missed: AtomicU64,
}

impl Shared {
    /// The phase of a request sent (or scheduled) at `at`; claims one of the
    /// `--requests` slots when it is measured.
    fn claim(&self, at: Instant) -> Phase {
        if at >= self.deadline || self.plan.stop.load(Ordering::Relaxed) {
            return Phase::Over;
        }
        if at < self.measure_start {
            return Phase::Warmup;
        }
        match self.plan.max_requests {
            Some(cap) if self.measured_sent.fetch_add(1, Ordering::Relaxed) >= cap => Phase::Over,
            _ => Phase::Measured,
        }
    }

    fn next_body(&self) -> Bytes {
        let index = self.next_body.fetch_add(1, Ordering::Relaxed);
        self.plan.bodies[index % self.plan.bodies.len()].clone()
    }
}

/// One HTTP/1.1 client per connection, so each task keeps exactly one
/// keep-alive connection of its own.
pub fn connection_client(timeout: Duration) -> anyhow::Result<Client> {
    Client::builder()
        .pool_max_idle_per_host(1)
        .timeout(timeout)
        .tcp_nodelay(true)
        .no_proxy()
        .build()
        .context("building the HTTP client")
}

/// How a request ended, with the answer's headers and body (empty after a failure).
pub type Sent = (Outcome, HeaderMap, Bytes);

/// Sends one body and reads the whole answer, so the connection can be reused.
pub async fn send(client: &Client, url: &Url, body: Bytes) -> Sent {
    let sent = client
        .post(url.clone())
        .header(CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await;
    let mut response = match sent {
        Ok(response) => response,
        Err(error) => return (transport_outcome(&error), HeaderMap::new(), Bytes::new()),
    };
    let status = response.status().as_u16();
    let headers = std::mem::take(response.headers_mut());
    match response.bytes().await {
        Ok(answer) => (Outcome::Status(status), headers, answer),
        Err(error) => (transport_outcome(&error), HeaderMap::new(), Bytes::new()),
    }
}

/// Counts a measured answer and shows it to the observer.
fn record(shared: &Shared, tally: &mut ConnectionTally, due: Instant, sent: Sent) {
    let (outcome, headers, body) = sent;
    let done = Instant::now();
    tally.record(outcome, done - due);
    if let Some(observer) = &shared.plan.observer {
        observer(&Answer {
            due,
            done,
            outcome,
            headers,
            body,
        });
    }
}

fn transport_outcome(error: &reqwest::Error) -> Outcome {
    if error.is_timeout() {
        Outcome::Timeout
    } else if error.is_connect() {
        Outcome::Connect
    } else {
        Outcome::Transport
    }
}

/// Runs the plan to its end: the deadline, or the request cap, whichever
/// comes first. A hard time limit covers a server that stops answering.
pub async fn run(plan: Plan) -> anyhow::Result<RunResult> {
    let start = Instant::now();
    let measure_start = start + plan.warmup;
    let deadline = measure_start + plan.measure;
    let hard_limit =
        plan.warmup + plan.measure + OPEN_LOOP_DRAIN + plan.timeout + Duration::from_secs(10);
    let shared = Arc::new(Shared {
        measure_start,
        deadline,
        next_body: AtomicUsize::new(0),
        measured_sent: AtomicU64::new(0),
        missed: AtomicU64::new(0),
        plan,
    });

    let tickets = match shared.plan.rate_per_s {
        Some(rate) => Some(start_pacer(start, deadline, rate)?),
        None => None,
    };
    let mut connections = tokio::task::JoinSet::new();
    for _ in 0..shared.plan.connections {
        let client = connection_client(shared.plan.timeout)?;
        let shared = Arc::clone(&shared);
        match &tickets {
            Some(tickets) => connections.spawn(open_loop(shared, client, Arc::clone(tickets))),
            None => connections.spawn(closed_loop(shared, client)),
        };
    }
    drop(tickets);

    let joined = tokio::time::timeout(hard_limit, connections.join_all()).await;
    let Ok(tallies) = joined else {
        bail!("the run did not finish within {hard_limit:?}; is the server hung?");
    };
    let capped = shared
        .plan
        .max_requests
        .is_some_and(|cap| shared.measured_sent.load(Ordering::Relaxed) >= cap);
    Ok(RunResult {
        tallies,
        missed: shared.missed.load(Ordering::Relaxed),
        capped,
    })
}

async fn closed_loop(shared: Arc<Shared>, client: Client) -> ConnectionTally {
    let mut tally = ConnectionTally::new();
    loop {
        let sent = Instant::now();
        let phase = shared.claim(sent);
        if phase == Phase::Over {
            break;
        }
        let answer = send(&client, &shared.plan.url, shared.next_body()).await;
        let outcome = answer.0;
        if phase == Phase::Measured {
            record(&shared, &mut tally, sent, answer);
        }
        if outcome.is_transport_failure() {
            tokio::time::sleep(FAILURE_BACKOFF).await;
        }
    }
    tally
}

type Tickets = Arc<Mutex<mpsc::UnboundedReceiver<Instant>>>;

/// Releases one ticket per scheduled send time until the deadline, from an OS
/// thread: tokio's timer has millisecond granularity, too coarse for intervals
/// of a fraction of a millisecond. Behind schedule, it releases at once.
///
/// TODO: the thread's wake-up jitter (tens of microseconds, more on a busy
/// machine) and the hand-off to a connection task count as latency; the floor
/// run shows how much, but it is not subtracted.
fn start_pacer(start: Instant, deadline: Instant, rate_per_s: f64) -> anyhow::Result<Tickets> {
    let (sender, receiver) = mpsc::unbounded_channel();
    let pacer = std::thread::Builder::new().name("load-pacer".to_owned());
    pacer
        .spawn(move || {
            for k in 0u64.. {
                let Some(scheduled) = scheduled_at(start, k, rate_per_s) else {
                    break;
                };
                if scheduled >= deadline {
                    break;
                }
                let now = Instant::now();
                if scheduled > now {
                    std::thread::sleep(scheduled - now);
                }
                if sender.send(scheduled).is_err() {
                    break;
                }
            }
        })
        .context("starting the pacer thread")?;
    Ok(Arc::new(Mutex::new(receiver)))
}

/// When the `k`-th request is due, or None when that is too far ahead for a
/// Duration or an Instant (a very low `--rate`): past any deadline, so the
/// pacer stops instead of panicking in `Duration::from_secs_f64`.
fn scheduled_at(start: Instant, k: u64, rate_per_s: f64) -> Option<Instant> {
    let offset = Duration::try_from_secs_f64(k as f64 / rate_per_s).ok()?;
    start.checked_add(offset)
}

/// Takes the next ticket, sends, and counts latency from the ticket's
/// scheduled time: a request that waited for a free connection waited in
/// the client's queue, which is latency its caller would see (no
/// coordinated omission).
async fn open_loop(shared: Arc<Shared>, client: Client, tickets: Tickets) -> ConnectionTally {
    let mut tally = ConnectionTally::new();
    loop {
        let ticket = tickets.lock().await.recv().await;
        let Some(scheduled) = ticket else { break };
        if Instant::now() >= shared.deadline + OPEN_LOOP_DRAIN {
            shared.missed.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let phase = shared.claim(scheduled);
        if phase == Phase::Over {
            break;
        }
        let answer = send(&client, &shared.plan.url, shared.next_body()).await;
        if phase == Phase::Measured {
            record(&shared, &mut tally, scheduled, answer);
        }
    }
    tally
}

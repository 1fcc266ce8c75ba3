//! Login events for the load generator, read from an RBA CSV file and
//! serialised once, before the run, into the service's JSON event shape.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use anyhow::{Context, bail};
use bytes::Bytes;
use serde_json::{Map, Value};

/// How a CSV cell becomes a JSON value in the event.
#[derive(Clone, Copy)]
enum Cell {
    Text,
    Number,
    Boolean,
}

/// The RBA CSV columns the service reads, with their JSON field and type.
/// `index` and `Is Account Takeover` are left out: the first is a row number,
/// the second the label, which an auth gateway never knows.
const COLUMNS: [(&str, &str, Cell); 14] = [
    ("Login Timestamp", "timestamp", Cell::Text),
    // NOTE: user ids are signed 64-bit in the data; the contract sends them as strings.
    ("User ID", "user_id", Cell::Text),
    ("Round-Trip Time [ms]", "round_trip_time_ms", Cell::Number),
    ("IP Address", "ip_address", Cell::Text),
    ("Country", "country", Cell::Text),
    ("Region", "region", Cell::Text),
    ("City", "city", Cell::Text),
    ("ASN", "asn", Cell::Number),
    ("User Agent String", "user_agent", Cell::Text),
    (
        "Browser Name and Version",
        "browser_name_and_version",
        Cell::Text,
    ),
    ("OS Name and Version", "os_name_and_version", Cell::Text),
    ("Device Type", "device_type", Cell::Text),
    ("Login Successful", "login_successful", Cell::Boolean),
    ("Is Attack IP", "is_attack_ip", Cell::Boolean),
];

/// Reads up to `limit` rows of an RBA CSV file (gzip when the name ends in
/// `.gz`) and returns each as a ready-to-send JSON request body.
///
/// TODO: takes the first rows, i.e. the first hours of a time-ordered file;
/// sampling across the file would vary hour and weekday too. Scoring cost does
/// not depend on the values, so throughput is unaffected.
pub fn read_event_bodies(path: &Path, limit: usize) -> anyhow::Result<Vec<Bytes>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|ext| ext == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(BufReader::new(file)))
    } else {
        Box::new(BufReader::new(file))
    };
    let mut csv = csv::Reader::from_reader(reader);

    let headers = csv.headers().context("reading the CSV header")?.clone();
    let positions = COLUMNS
        .iter()
        .map(|(column, _, _)| {
            headers
                .iter()
                .position(|header| header == *column)
                .with_context(|| format!("{}: no column {column:?}", path.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    let mut bodies = Vec::with_capacity(limit.min(1 << 20));
    for (row_number, record) in csv.records().take(limit).enumerate() {
        let record = record.with_context(|| format!("reading CSV row {}", row_number + 1))?;
        let mut event = Map::with_capacity(COLUMNS.len());
        for ((_, field, cell), &position) in COLUMNS.iter().zip(&positions) {
            let raw = record.get(position).unwrap_or("");
            event.insert((*field).to_owned(), cell_value(raw, *cell));
        }
        bodies.push(Bytes::from(serde_json::to_vec(&Value::Object(event))?));
    }
    if bodies.is_empty() {
        bail!("{}: no event rows", path.display());
    }
    Ok(bodies)
}

/// Groups event bodies into batch bodies of `size` events each, `{"events": [...]}`,
/// taking events in order and wrapping around so every batch is full.
pub fn batch_bodies(events: &[Bytes], size: usize) -> Vec<Bytes> {
    let batches = events.len().div_ceil(size).max(1);
    (0..batches)
        .map(|batch| {
            let mut body = b"{\"events\":[".to_vec();
            for k in 0..size {
                if k > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(&events[(batch * size + k) % events.len()]);
            }
            body.extend_from_slice(b"]}");
            Bytes::from(body)
        })
        .collect()
}

/// Empty cells become `null` (the service treats both as missing); numbers
/// and booleans that do not parse are sent as text so the service, not the
/// load generator, decides what bad input means.
fn cell_value(raw: &str, cell: Cell) -> Value {
    let raw = raw.trim();
    if raw.is_empty() {
        return Value::Null;
    }
    match cell {
        Cell::Text => Value::String(raw.to_owned()),
        Cell::Number => raw
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| raw.parse::<f64>().map(Value::from))
            .unwrap_or_else(|_| Value::String(raw.to_owned())),
        Cell::Boolean => match raw {
            "True" | "true" => Value::Bool(true),
            "False" | "false" => Value::Bool(false),
            _ => Value::String(raw.to_owned()),
        },
    }
}

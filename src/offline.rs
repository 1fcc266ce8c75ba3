//! Offline scoring of an RBA CSV (plain or gzip) with the service's own event reader,
//! preprocessing and model: a reader thread cuts the file into chunks, one worker per
//! ONNX session parses and scores each chunk in a single inference call, and the
//! caller's thread writes rows back in input order.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::mpsc::{Receiver, sync_channel};
use std::sync::{Arc, Mutex};

use csv::StringRecord;

use crate::scoring::event::RawValue;
use crate::scoring::{Action, EventError, EventField, LoginEvent, Scorer};

/// Rows per inference call by default.
pub const DEFAULT_CHUNK_ROWS: usize = 4096;

/// How many bad rows are reported with their reason.
const REPORTED_ERRORS: usize = 10;

/// Why offline scoring stopped.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// The input could not be read or decompressed.
    #[error("cannot read the input: {0}")]
    Read(#[from] std::io::Error),
    /// The CSV is malformed.
    #[error("malformed CSV: {0}")]
    Csv(#[from] csv::Error),
    /// The header names none of the RBA columns.
    #[error("the header has none of the RBA columns (e.g. `Login Timestamp` or `timestamp`)")]
    NoKnownColumns,
    /// Inference failed.
    #[error("scoring failed: {0}")]
    Score(String),
}

/// The CSV's columns that map to event fields.
#[derive(Debug, Clone)]
pub struct CsvColumns {
    positions: [Option<usize>; EventField::ALL.len()],
    index: Option<usize>,
}

impl CsvColumns {
    /// Maps header names (RBA column names or snake_case field names) to fields.
    pub fn from_headers(headers: &StringRecord) -> Result<CsvColumns, OfflineError> {
        let mut positions = [None; EventField::ALL.len()];
        let mut index = None;
        for (column, name) in headers.iter().enumerate() {
            let name = name.trim();
            if name == "index" {
                index = Some(column);
            } else if let Some(field) = EventField::from_name(name) {
                positions[field_slot(field)].get_or_insert(column);
            }
        }
        if positions.iter().all(Option::is_none) {
            return Err(OfflineError::NoKnownColumns);
        }
        Ok(CsvColumns { positions, index })
    }

    /// Whether the file carries the takeover label.
    pub fn has_label(&self) -> bool {
        self.positions[field_slot(EventField::IsAccountTakeover)].is_some()
    }

    /// Reads one row as an event, exactly as a JSON request's fields would be read.
    pub fn event(&self, record: &StringRecord) -> Result<LoginEvent, EventError> {
        LoginEvent::from_fields(|field| {
            self.positions[field_slot(field)]
                .and_then(|column| record.get(column))
                .map(RawValue::Text)
        })
    }
}

fn field_slot(field: EventField) -> usize {
    EventField::ALL
        .iter()
        .position(|candidate| *candidate == field)
        .unwrap_or_default()
}

/// The score of one row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowScore {
    /// Reconstruction error.
    pub score: f64,
    /// Percentile among held-out normal logins.
    pub percentile: f64,
    /// At or above the threshold.
    pub anomalous: bool,
    /// allow, challenge or deny.
    pub action: Action,
}

/// What a run scored.
#[derive(Debug, Clone, Default)]
pub struct OfflineSummary {
    /// Data rows read.
    pub rows: u64,
    /// Rows that could not be read as an event.
    pub failed: u64,
    /// The first few row errors, `row N: reason`.
    pub first_errors: Vec<String>,
    /// `(score, is_takeover)` for scored rows that carry the label.
    // TODO: kept whole for the exact ROC-AUC: 16 bytes a row, 500 MB on the 31M-row file plus
    // a sorted copy in `evaluation`, most of that run's 1.28 GB peak RSS (BENCHMARKS.md).
    pub labelled: Vec<(f64, bool)>,
}

/// Knobs of a run.
#[derive(Debug, Clone, Copy)]
pub struct OfflineOptions {
    /// Rows per inference call.
    pub chunk_rows: usize,
    /// Worker threads (one per session is the sweet spot).
    pub workers: usize,
}

struct Chunk {
    number: u64,
    first_row: u64,
    records: Vec<StringRecord>,
}

struct ScoredChunk {
    number: u64,
    rows: Vec<ScoredRow>,
}

struct ScoredRow {
    index: String,
    user_id: Option<i64>,
    result: Result<RowScore, String>,
    takeover: Option<bool>,
}

/// Opens `input`, decompressing when it starts with the gzip magic bytes.
pub fn open_input(input: impl Read + Send + 'static) -> std::io::Result<Box<dyn Read + Send>> {
    let mut buffered = BufReader::with_capacity(1 << 16, input);
    let is_gzip = buffered.fill_buf()?.starts_with(&[0x1f, 0x8b]);
    Ok(if is_gzip {
        Box::new(BufReader::with_capacity(
            1 << 16,
            flate2::read::MultiGzDecoder::new(buffered),
        ))
    } else {
        Box::new(buffered)
    })
}

/// Scores every row of `input` and writes `index,user_id,score,percentile,anomalous,action`
/// to `output` in input order. Rows that are not valid events keep their line with empty
/// score columns and are counted in the summary.
pub fn score_csv(
    input: Box<dyn Read + Send>,
    output: impl Write,
    scorer: &Scorer,
    options: OfflineOptions,
) -> Result<OfflineSummary, OfflineError> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(input);
    let columns = CsvColumns::from_headers(reader.headers()?)?;
    let mut writer = csv::Writer::from_writer(output);
    writer.write_record([
        "index",
        "user_id",
        "score",
        "percentile",
        "anomalous",
        "action",
    ])?;

    let workers = options.workers.max(1);
    let chunk_rows = options.chunk_rows.max(1);
    let (chunk_tx, chunk_rx) = sync_channel::<Chunk>(workers * 2);
    let (scored_tx, scored_rx) = sync_channel::<Result<ScoredChunk, OfflineError>>(workers * 2);
    let chunk_rx = Arc::new(Mutex::new(chunk_rx));

    std::thread::scope(|scope| {
        let reading = scope.spawn(move || read_chunks(reader, chunk_rows, chunk_tx));
        for _ in 0..workers {
            let (chunk_rx, scored_tx, columns) =
                (Arc::clone(&chunk_rx), scored_tx.clone(), &columns);
            scope.spawn(move || score_chunks(&chunk_rx, &scored_tx, columns, scorer));
        }
        drop(scored_tx);

        let written = write_in_order(&mut writer, scored_rx);
        let read = reading
            .join()
            .unwrap_or_else(|_| Err(OfflineError::Score("reader panicked".into())));
        let summary = written?;
        read?;
        writer.flush()?;
        Ok(summary)
    })
}

// TODO: one thread decompresses and splits the CSV for all workers; on the 2-core
// machine (255k rows/s on the 2M-row file) that has not been the limit, but on more
// cores it will be, and decompression could move to its own thread.
fn read_chunks(
    mut reader: csv::Reader<Box<dyn Read + Send>>,
    chunk_rows: usize,
    chunks: std::sync::mpsc::SyncSender<Chunk>,
) -> Result<(), OfflineError> {
    let (mut number, mut first_row) = (0, 0);
    let mut records = Vec::with_capacity(chunk_rows);
    for record in reader.records() {
        records.push(record?);
        if records.len() == chunk_rows {
            let full = std::mem::replace(&mut records, Vec::with_capacity(chunk_rows));
            let rows = full.len() as u64;
            if chunks
                .send(Chunk {
                    number,
                    first_row,
                    records: full,
                })
                .is_err()
            {
                return Ok(()); // the writer stopped; it reports why
            }
            number += 1;
            first_row += rows;
        }
    }
    if !records.is_empty() {
        let _ = chunks.send(Chunk {
            number,
            first_row,
            records,
        });
    }
    Ok(())
}

fn score_chunks(
    chunks: &Mutex<Receiver<Chunk>>,
    scored: &std::sync::mpsc::SyncSender<Result<ScoredChunk, OfflineError>>,
    columns: &CsvColumns,
    scorer: &Scorer,
) {
    loop {
        let next = chunks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .recv();
        let Ok(chunk) = next else { return };
        if scored.send(score_chunk(chunk, columns, scorer)).is_err() {
            return;
        }
    }
}

fn score_chunk(
    chunk: Chunk,
    columns: &CsvColumns,
    scorer: &Scorer,
) -> Result<ScoredChunk, OfflineError> {
    let events: Vec<Result<LoginEvent, EventError>> = chunk
        .records
        .iter()
        .map(|record| columns.event(record))
        .collect();
    let vectors: Vec<_> = events
        .iter()
        .filter_map(|event| event.as_ref().ok())
        .map(|event| scorer.preprocessor().encode(event))
        .collect();
    let outcomes = scorer
        .score_vectors(&vectors)
        .map_err(|err| OfflineError::Score(err.to_string()))?;

    let mut outcomes = outcomes.into_iter();
    let rows = chunk
        .records
        .iter()
        .zip(&events)
        .enumerate()
        .map(|(offset, (record, event))| {
            let row = chunk.first_row + offset as u64;
            let index = columns
                .index
                .and_then(|column| record.get(column))
                .map_or_else(|| row.to_string(), str::to_owned);
            match event {
                Ok(event) => {
                    let result = outcomes
                        .next()
                        .map(|outcome| RowScore {
                            score: outcome.reconstruction_error,
                            percentile: outcome.percentile,
                            anomalous: outcome.anomalous,
                            action: outcome.action,
                        })
                        .ok_or_else(|| format!("row {row}: no score returned"));
                    ScoredRow {
                        index,
                        user_id: event.user_id,
                        result,
                        takeover: event.is_account_takeover,
                    }
                }
                Err(err) => ScoredRow {
                    index,
                    user_id: None,
                    result: Err(format!("row {row}: {err}")),
                    takeover: None,
                },
            }
        })
        .collect();
    Ok(ScoredChunk {
        number: chunk.number,
        rows,
    })
}

fn write_in_order(
    writer: &mut csv::Writer<impl Write>,
    scored: Receiver<Result<ScoredChunk, OfflineError>>,
) -> Result<OfflineSummary, OfflineError> {
    let mut summary = OfflineSummary::default();
    let mut waiting: BTreeMap<u64, ScoredChunk> = BTreeMap::new();
    let mut next = 0;
    for chunk in scored {
        let chunk = chunk?;
        waiting.insert(chunk.number, chunk);
        while let Some(chunk) = waiting.remove(&next) {
            for row in &chunk.rows {
                write_row(writer, row, &mut summary)?;
            }
            next += 1;
        }
    }
    Ok(summary)
}

fn write_row(
    writer: &mut csv::Writer<impl Write>,
    row: &ScoredRow,
    summary: &mut OfflineSummary,
) -> Result<(), OfflineError> {
    summary.rows += 1;
    let user_id = row.user_id.map(|id| id.to_string()).unwrap_or_default();
    match &row.result {
        Ok(score) => {
            if let Some(takeover) = row.takeover {
                summary.labelled.push((score.score, takeover));
            }
            writer.write_record([
                row.index.as_str(),
                &user_id,
                &score.score.to_string(),
                &score.percentile.to_string(),
                if score.anomalous { "true" } else { "false" },
                score.action.as_str(),
            ])?;
        }
        Err(reason) => {
            summary.failed += 1;
            if summary.first_errors.len() < REPORTED_ERRORS {
                summary.first_errors.push(reason.clone());
            }
            writer.write_record([row.index.as_str(), &user_id, "", "", "", ""])?;
        }
    }
    Ok(())
}

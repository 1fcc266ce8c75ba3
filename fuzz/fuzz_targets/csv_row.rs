//! An RBA CSV file as `login-scorer score` reads it: header, then rows into events.
#![no_main]

use libfuzzer_sys::fuzz_target;
use login_scorer::offline::CsvColumns;

fuzz_target!(|data: &[u8]| {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(data);
    let Ok(headers) = reader.headers().cloned() else {
        return;
    };
    let Ok(columns) = CsvColumns::from_headers(&headers) else {
        return;
    };
    // NOTE: bounded so a huge input cannot make one run slow.
    for record in reader.records().take(1000).flatten() {
        let _ = columns.event(&record);
    }
});

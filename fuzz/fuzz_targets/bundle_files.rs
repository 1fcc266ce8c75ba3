//! The text files of a bundle: the manifest (parsed and validated), preprocess.json
//! (parsed and compiled into a preprocessor) and golden.jsonl. The first byte picks
//! the file, the rest is its content.
#![no_main]

use libfuzzer_sys::fuzz_target;
use login_scorer::bundle::preprocess::PreprocessSpec;
use login_scorer::bundle::{Manifest, golden};
use login_scorer::scoring::Preprocessor;

fuzz_target!(|data: &[u8]| {
    let Some((&which, content)) = data.split_first() else {
        return;
    };
    match which % 3 {
        0 => {
            if let Ok(manifest) = serde_json::from_slice::<Manifest>(content) {
                let _ = manifest.validate(manifest.version);
            }
        }
        1 => {
            if let Ok(spec) = serde_json::from_slice::<PreprocessSpec>(content) {
                let _ = Preprocessor::new(&spec);
            }
        }
        _ => {
            let _ = golden::parse(content);
        }
    }
});

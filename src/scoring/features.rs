//! Event -> feature vector, following `preprocess.json` exactly (docs/bundle.md): label
//! codes, reserved code for unseen values, fill codes for missing ones, min-max scaling.

use std::collections::HashMap;

use chrono::{Datelike, Timelike};

use super::event::{self, EventField, LoginEvent};
use crate::bundle::preprocess::{FeatureKind, PreprocessSpec, SCHEMA_VERSION};

/// Widest model the per-feature bit sets in [`FeatureVector`] can describe.
pub const MAX_WIDTH: usize = 64;

/// Why a `preprocess.json` cannot be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PreprocessorError {
    /// The file breaks a rule of docs/bundle.md.
    #[error("{0}")]
    Invalid(String),
}

/// The model input for one event, plus which features were unseen or missing.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureVector {
    /// Scaled values, in the bundle's feature order.
    pub values: Vec<f32>,
    /// Bit `i` set: feature `i` had a category value not seen in training.
    pub unseen: u64,
    /// Bit `i` set: feature `i`'s source field was missing and got its fill code.
    pub missing: u64,
}

/// Iterates the indices of the set bits of a feature bit set, ascending.
pub fn feature_indices(bits: u64) -> impl Iterator<Item = usize> {
    (0..MAX_WIDTH).filter(move |i| bits & (1 << i) != 0)
}

/// Applies one bundle's preprocessing to events.
#[derive(Debug, Clone)]
pub struct Preprocessor {
    features: Vec<CompiledFeature>,
    min: Vec<f64>,
    range: Vec<f64>,
    fill: Vec<f64>,
}

#[derive(Debug, Clone)]
struct CompiledFeature {
    name: String,
    source: EventField,
    encoding: Encoding,
}

#[derive(Debug, Clone)]
enum Encoding {
    Category {
        codes: HashMap<String, u32>,
        reserved: u32,
        strip_version: bool,
    },
    Boolean,
    HourOfDay,
    DayOfWeek,
}

impl Preprocessor {
    /// Validates `spec` and prepares the lookups.
    pub fn new(spec: &PreprocessSpec) -> Result<Preprocessor, PreprocessorError> {
        let invalid = |reason: String| Err(PreprocessorError::Invalid(reason));
        let width = spec.features.len();

        if spec.schema_version != SCHEMA_VERSION {
            return invalid(format!(
                "schema_version {} is not supported",
                spec.schema_version
            ));
        }
        if width == 0 || width > MAX_WIDTH {
            return invalid(format!("{width} features; expected 1 to {MAX_WIDTH}"));
        }
        if spec.unseen.rule != "reserved_code" || spec.missing.rule != "fill" {
            return invalid(format!(
                "unknown rules unseen={:?} missing={:?} (expected reserved_code, fill)",
                spec.unseen.rule, spec.missing.rule
            ));
        }
        let (min, max, fill) = (&spec.scaler.min, &spec.scaler.max, &spec.missing.fill);
        if min.len() != width || max.len() != width || fill.len() != width {
            return invalid(format!(
                "scaler.min, scaler.max and missing.fill need {width} numbers each"
            ));
        }
        for i in 0..width {
            let finite = min[i].is_finite() && max[i].is_finite() && fill[i].is_finite();
            if !finite || max[i] <= min[i] {
                return invalid(format!(
                    "feature {}: scaler needs finite min < max and a finite fill",
                    spec.features[i].name
                ));
            }
        }

        let features = spec
            .features
            .iter()
            .map(|feature| compile_feature(spec, &feature.name, &feature.source, feature.kind))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Preprocessor {
            features,
            min: min.clone(),
            range: min.iter().zip(max).map(|(lo, hi)| hi - lo).collect(),
            fill: fill.clone(),
        })
    }

    /// Number of features (the model's input width).
    pub fn width(&self) -> usize {
        self.features.len()
    }

    /// Name of feature `index`.
    pub fn feature_name(&self, index: usize) -> &str {
        &self.features[index].name
    }

    /// Turns one event into its scaled feature vector.
    pub fn encode(&self, event: &LoginEvent) -> FeatureVector {
        let mut vector = FeatureVector {
            values: Vec::with_capacity(self.width()),
            unseen: 0,
            missing: 0,
        };
        for (i, feature) in self.features.iter().enumerate() {
            let raw = match feature.raw_code(event) {
                RawCode::Known(code) => code,
                RawCode::Unseen(code) => {
                    vector.unseen |= 1 << i;
                    code
                }
                RawCode::Missing => {
                    vector.missing |= 1 << i;
                    self.fill[i]
                }
            };
            // NOTE: computed in f64 and stored as f32, as the contract and
            // scikit-learn's MinMaxScaler (float64 fit, float32 cast) do.
            vector
                .values
                .push(((raw - self.min[i]) / self.range[i]) as f32);
        }
        vector
    }
}

enum RawCode {
    Known(f64),
    Unseen(f64),
    Missing,
}

impl CompiledFeature {
    fn raw_code(&self, event: &LoginEvent) -> RawCode {
        match &self.encoding {
            Encoding::Category {
                codes,
                reserved,
                strip_version,
            } => {
                let Some(value) = event.text(self.source) else {
                    return RawCode::Missing;
                };
                // NOTE: plain categories match exactly, untrimmed (docs/bundle.md);
                // only the version-stripping kind trims.
                let value = if *strip_version {
                    strip_version_token(value)
                } else {
                    value
                };
                match codes.get(value) {
                    Some(code) => RawCode::Known(f64::from(*code)),
                    None => RawCode::Unseen(f64::from(*reserved)),
                }
            }
            Encoding::Boolean => match event.flag(self.source) {
                Some(flag) => RawCode::Known(if flag { 1.0 } else { 0.0 }),
                None => RawCode::Missing,
            },
            Encoding::HourOfDay => match event.timestamp {
                Some(at) => RawCode::Known(f64::from(at.hour())),
                None => RawCode::Missing,
            },
            Encoding::DayOfWeek => match event.timestamp {
                Some(at) => RawCode::Known(f64::from(at.weekday().num_days_from_monday())),
                None => RawCode::Missing,
            },
        }
    }
}

fn compile_feature(
    spec: &PreprocessSpec,
    name: &str,
    source: &str,
    kind: FeatureKind,
) -> Result<CompiledFeature, PreprocessorError> {
    let invalid = |reason: &str| PreprocessorError::Invalid(format!("feature {name}: {reason}"));
    let source = EventField::from_name(source)
        .ok_or_else(|| invalid(&format!("unknown source field `{source}`")))?;

    let encoding = match kind {
        FeatureKind::Category | FeatureKind::CategoryStripVersion => {
            if !event::is_text_field(source) {
                return Err(invalid(&format!("source `{source}` is not a text field")));
            }
            let classes = spec
                .categories
                .get(name)
                .ok_or_else(|| invalid("no class list in categories"))?;
            // NOTE: Rust orders strings by UTF-8 bytes, which is Unicode code point
            // order: the same order numpy.unique gives LabelEncoder's classes.
            if classes.windows(2).any(|pair| pair[0] >= pair[1]) {
                return Err(invalid(
                    "class list is not sorted by code point without repeats",
                ));
            }
            let codes = classes.iter().cloned().zip(0u32..).collect();
            let reserved = u32::try_from(classes.len()).map_err(|_| invalid("too many classes"))?;
            Encoding::Category {
                codes,
                reserved,
                strip_version: kind == FeatureKind::CategoryStripVersion,
            }
        }
        FeatureKind::Boolean if event::is_flag_field(source) => Encoding::Boolean,
        FeatureKind::HourOfDay if source == EventField::Timestamp => Encoding::HourOfDay,
        FeatureKind::DayOfWeek if source == EventField::Timestamp => Encoding::DayOfWeek,
        _ => {
            return Err(invalid(&format!(
                "kind {kind:?} cannot use source `{source}`"
            )));
        }
    };
    Ok(CompiledFeature {
        name: name.to_owned(),
        source,
        encoding,
    })
}

/// Drops a trailing version token: after trimming, if the value contains whitespace and
/// its last whitespace-separated token starts with an ASCII digit, that token and the
/// whitespace before it go; otherwise the value stays whole.
pub fn strip_version_token(value: &str) -> &str {
    let value = value.trim();
    let Some(split) = value.rfind(char::is_whitespace) else {
        return value;
    };
    let last_token = value[split..].trim_start();
    if last_token.starts_with(|c: char| c.is_ascii_digit()) {
        value[..split].trim_end()
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_versions_as_the_contract_says() {
        let cases = [
            ("Chrome Mobile WebView 85.0.4183", "Chrome Mobile WebView"),
            ("Mac OS X 10.14.6", "Mac OS X"),
            ("Other", "Other"),
            ("Windows XP", "Windows XP"),
            ("  Firefox 20.0.0.1618  ", "Firefox"),
            ("Android 2.3.3.2672", "Android"),
            ("Chrome\t 86", "Chrome"),
            ("85.0", "85.0"),
            ("Opera Mini v5", "Opera Mini v5"),
        ];
        for (raw, stripped) in cases {
            assert_eq!(strip_version_token(raw), stripped, "{raw:?}");
        }
    }

    #[test]
    fn bit_sets_list_feature_indices() {
        assert_eq!(
            feature_indices(0b1010_0001).collect::<Vec<_>>(),
            vec![0, 5, 7]
        );
    }
}

//! `preprocess.json`: how a raw event becomes the model's input vector. The rules are
//! applied by [`crate::scoring::Preprocessor`]; this module only holds the file's shape.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The preprocessing schema this service implements.
pub const SCHEMA_VERSION: u32 = 1;

/// The parsed `preprocess.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PreprocessSpec {
    /// Must equal [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The model's input features, in input-vector order.
    pub features: Vec<FeatureSpec>,
    /// Sorted class list per category feature name.
    pub categories: BTreeMap<String, Vec<String>>,
    /// Min-max scaler fitted on the training rows.
    pub scaler: ScalerSpec,
    /// What an unseen category value becomes.
    pub unseen: UnseenRule,
    /// What a missing field becomes.
    pub missing: MissingRule,
}

/// One input feature.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FeatureSpec {
    /// Feature name, e.g. `browser_name`.
    pub name: String,
    /// The event field it is computed from, e.g. `browser_name_and_version`.
    pub source: String,
    /// How the raw code is computed.
    pub kind: FeatureKind,
}

/// How a feature's raw code is computed from its source field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureKind {
    /// Index of the value in the class list.
    Category,
    /// Index of the value, after stripping a trailing version token, in the class list.
    CategoryStripVersion,
    /// 1 for true, 0 for false.
    Boolean,
    /// Hour 0-23 in UTC.
    HourOfDay,
    /// Weekday in UTC, Monday = 0.
    DayOfWeek,
}

/// Min-max scaler parameters (scikit-learn's `data_min_` and `data_max_`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScalerSpec {
    /// Per-feature minimum raw code.
    pub min: Vec<f64>,
    /// Per-feature maximum raw code.
    pub max: Vec<f64>,
}

/// The unseen-value rule; only `reserved_code` exists.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnseenRule {
    /// Must be `reserved_code`.
    pub rule: String,
}

/// The missing-value rule; only `fill` exists.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MissingRule {
    /// Must be `fill`.
    pub rule: String,
    /// Raw code per feature used when its source is missing.
    pub fill: Vec<f64>,
}

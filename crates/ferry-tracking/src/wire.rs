//! MLflow's proto-JSON shapes. Only this crate knows them: store records are
//! converted here, at the edge.

use ferry_metadata::{DatasetInput, Experiment, Metric, RunInfo, TrackedRun};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct KeyValue {
    pub key: String,
    #[serde(default)]
    pub value: String,
}

fn kvs(v: &[(String, String)]) -> Vec<KeyValue> {
    v.iter()
        .map(|(k, v)| KeyValue {
            key: k.clone(),
            value: v.clone(),
        })
        .collect()
}

#[derive(Debug, Serialize)]
pub struct WireExperiment {
    pub experiment_id: String,
    pub name: String,
    pub artifact_location: String,
    pub lifecycle_stage: String,
    pub last_update_time: i64,
    pub creation_time: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<KeyValue>,
}

impl From<&Experiment> for WireExperiment {
    fn from(e: &Experiment) -> Self {
        Self {
            experiment_id: e.experiment_id.to_string(),
            name: e.name.clone(),
            artifact_location: e.artifact_location.clone(),
            lifecycle_stage: e.lifecycle_stage.clone(),
            last_update_time: e.last_update_time,
            creation_time: e.creation_time,
            tags: kvs(&e.tags),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct WireRunInfo {
    pub run_uuid: String,
    pub run_id: String,
    pub experiment_id: String,
    pub run_name: String,
    pub user_id: String,
    pub status: String,
    pub start_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_time: Option<i64>,
    pub artifact_uri: String,
    pub lifecycle_stage: String,
}

impl From<&RunInfo> for WireRunInfo {
    fn from(r: &RunInfo) -> Self {
        Self {
            run_uuid: r.run_id.clone(),
            run_id: r.run_id.clone(),
            experiment_id: r.experiment_id.to_string(),
            run_name: r.run_name.clone(),
            user_id: r.user_id.clone(),
            status: r.status.clone(),
            start_time: r.start_time,
            end_time: r.end_time,
            artifact_uri: r.artifact_uri.clone(),
            lifecycle_stage: r.lifecycle_stage.clone(),
        }
    }
}

/// A metric as proto-JSON has it: NaN and infinities as strings.
#[derive(Debug, Serialize)]
pub struct WireMetric {
    pub key: String,
    pub value: serde_json::Value,
    pub timestamp: i64,
    pub step: i64,
}

/// A double as proto-JSON writes it, serialized without a JSON tree.
#[derive(Debug, Clone, Copy)]
pub struct Double(pub f64);

impl Serialize for Double {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_nan() {
            s.serialize_str("NaN")
        } else if v == f64::INFINITY {
            s.serialize_str("Infinity")
        } else if v == f64::NEG_INFINITY {
            s.serialize_str("-Infinity")
        } else {
            s.serialize_f64(v)
        }
    }
}

pub fn double(v: f64) -> serde_json::Value {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "Infinity".into()
    } else if v == f64::NEG_INFINITY {
        "-Infinity".into()
    } else {
        serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
}

impl From<&Metric> for WireMetric {
    fn from(m: &Metric) -> Self {
        Self {
            key: m.key.clone(),
            value: double(m.value),
            timestamp: m.timestamp,
            step: m.step,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WireDataset {
    pub name: String,
    pub digest: String,
    pub source_type: String,
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WireDatasetInput {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<KeyValue>,
    pub dataset: WireDataset,
}

impl From<&DatasetInput> for WireDatasetInput {
    fn from(d: &DatasetInput) -> Self {
        Self {
            tags: kvs(&d.tags),
            dataset: WireDataset {
                name: d.dataset.name.clone(),
                digest: d.dataset.digest.clone(),
                source_type: d.dataset.source_type.clone(),
                source: d.dataset.source.clone(),
                schema: d.dataset.schema.clone(),
                profile: d.dataset.profile.clone(),
            },
        }
    }
}

#[derive(Debug, Serialize)]
pub struct WireRunData {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<WireMetric>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub params: Vec<KeyValue>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<KeyValue>,
}

#[derive(Debug, Serialize)]
pub struct WireRunInputs {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub dataset_inputs: Vec<WireDatasetInput>,
}

#[derive(Debug, Serialize)]
pub struct WireRun {
    pub info: WireRunInfo,
    pub data: WireRunData,
    pub inputs: WireRunInputs,
    pub outputs: serde_json::Value,
}

impl From<&TrackedRun> for WireRun {
    fn from(r: &TrackedRun) -> Self {
        Self {
            info: (&r.info).into(),
            data: WireRunData {
                metrics: r.metrics.iter().map(Into::into).collect(),
                params: kvs(&r.params),
                tags: kvs(&r.tags),
            },
            inputs: WireRunInputs {
                dataset_inputs: r.inputs.iter().map(Into::into).collect(),
            },
            outputs: if r.outputs.is_empty() {
                serde_json::json!({})
            } else {
                serde_json::json!({
                    "model_outputs": r.outputs.iter().map(|(m, s)| serde_json::json!({"model_id": m, "step": s})).collect::<Vec<_>>()
                })
            },
        }
    }
}

/// Page tokens: opaque to clients, an offset to us.
pub fn page_token(offset: i64) -> String {
    format!("ferry1-{offset:x}")
}

pub fn parse_page_token(token: Option<&str>) -> Result<i64, crate::error::ApiError> {
    match token.filter(|t| !t.is_empty()) {
        None => Ok(0),
        Some(t) => t
            .strip_prefix("ferry1-")
            .and_then(|h| i64::from_str_radix(h, 16).ok())
            .filter(|o| *o >= 0)
            .ok_or_else(|| {
                crate::error::ApiError::invalid(format!(
                    "Invalid page token, could not base64-decode: '{t}'"
                ))
            }),
    }
}

#[derive(Debug, Serialize)]
pub struct WireModelVersion {
    pub name: String,
    pub version: String,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    pub current_stage: String,
    pub description: String,
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    pub status: String,
    pub run_link: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<KeyValue>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
}

impl From<&ferry_metadata::ModelVersion> for WireModelVersion {
    fn from(v: &ferry_metadata::ModelVersion) -> Self {
        Self {
            name: v.model.clone(),
            version: v.version.to_string(),
            creation_timestamp: v.created_ms,
            last_updated_timestamp: v.last_updated_ms,
            current_stage: "None".into(),
            description: v.description.clone(),
            source: v.source.clone(),
            run_id: v.run_id.clone(),
            status: "READY".into(),
            run_link: String::new(),
            tags: kvs(&v.tags),
            aliases: v.aliases.clone(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct WireAlias {
    pub alias: String,
    pub version: String,
}

#[derive(Debug, Serialize)]
pub struct WireRegisteredModel {
    pub name: String,
    pub creation_timestamp: i64,
    pub last_updated_timestamp: i64,
    pub description: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub latest_versions: Vec<WireModelVersion>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<KeyValue>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<WireAlias>,
}

impl From<&ferry_metadata::RegisteredModel> for WireRegisteredModel {
    fn from(m: &ferry_metadata::RegisteredModel) -> Self {
        Self {
            name: m.name.clone(),
            creation_timestamp: m.creation_ms,
            last_updated_timestamp: m.last_updated_ms,
            description: m.description.clone(),
            latest_versions: m.latest.iter().map(Into::into).collect(),
            tags: kvs(&m.tags),
            aliases: m
                .aliases
                .iter()
                .map(|(a, v)| WireAlias {
                    alias: a.clone(),
                    version: v.to_string(),
                })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct WireLoggedModelInfo {
    pub model_id: String,
    pub experiment_id: String,
    pub name: String,
    pub creation_timestamp_ms: i64,
    pub last_updated_timestamp_ms: i64,
    pub artifact_uri: String,
    pub status: String,
    pub model_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_run_id: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<KeyValue>,
}

#[derive(Debug, Serialize)]
pub struct WireLoggedModel {
    pub info: WireLoggedModelInfo,
    pub data: serde_json::Value,
}

impl From<&ferry_metadata::LoggedModel> for WireLoggedModel {
    fn from(m: &ferry_metadata::LoggedModel) -> Self {
        Self {
            info: WireLoggedModelInfo {
                model_id: m.model_id.clone(),
                experiment_id: m.experiment_id.to_string(),
                name: m.name.clone(),
                creation_timestamp_ms: m.creation_ms,
                last_updated_timestamp_ms: m.last_updated_ms,
                artifact_uri: m.artifact_location.clone(),
                status: m.status.clone(),
                model_type: m.model_type.clone(),
                source_run_id: m.source_run_id.clone(),
                tags: kvs(&m.tags),
            },
            data: if m.params.is_empty() {
                serde_json::json!({})
            } else {
                serde_json::json!({ "params": kvs(&m.params) })
            },
        }
    }
}

//! Registration: the run's artifact becomes a model version with its
//! lineage (source data, params, metrics, environment) and, for an ONNX
//! file, MLflow's `MLmodel` with the declared signature.

use crate::engine::{Engine, to_locked};
use crate::report::{Event, RunReport};
use crate::scheduler::RunContext;
use crate::{Error, Project, Result};
use ferry_core::now_ms;
use ferry_env::PreparedEnv;
use ferry_metadata::NewModelVersion;
use std::collections::BTreeMap;

/// Registers the run's artifact as a new version of the model with its
/// lineage, unless it equals an existing version (then the alias follows
/// that one, unless it was rejected). Returns whether the registry changed
/// (a new version, or an alias moved).
pub(crate) fn register(
    cx: &RunContext<'_>,
    engine: &mut Engine<'_>,
    reg: &ferry_spec::Register,
    params: &BTreeMap<String, serde_json::Value>,
    metrics: &BTreeMap<String, serde_json::Value>,
    env: Option<&PreparedEnv>,
    report: &mut RunReport,
) -> Result<bool> {
    let (project, recorder, started, reporter) =
        (cx.project, cx.recorder, cx.started, cx.reporter.as_ref());
    // The artifact's digest: an out itself, or a file inside a folder out.
    let producer = engine.locked(reg.producer.as_str());
    let artifact = match producer.and_then(|p| p.outs.get(&reg.artifact)) {
        Some(l) => Some(*l),
        None => engine.digest_path(&reg.artifact)?.map(|d| to_locked(&d)),
    };
    let Some(artifact) = artifact else {
        return Ok(false);
    };
    let model = reg.model.to_string();
    let versions = recorder.versions(&model)?;
    // The same artifact as an existing version (nothing changed, or inputs
    // reverted to an old state): no new version; the alias follows it.
    if let Some(same) = versions
        .iter()
        .rev()
        .find(|v| v.artifact_digest == artifact.digest.to_hex())
    {
        let msg = format!("{}/{}", same.model, same.version);
        // A rejected version stays rejected: an unchanged run does not
        // point an alias back at it.
        if let Some(why) = same.rejected() {
            reporter.event(Event::ModelRejected(&msg, why));
            report.model_unchanged = Some(msg);
            report.model_rejected = Some(why.to_owned());
            return Ok(false);
        }
        let mut moved = false;
        if let Some(alias) = reg.alias.as_ref().filter(|a| !same.aliases.contains(*a)) {
            recorder.set_alias(
                &same.model,
                alias,
                same.version,
                Some("the pipeline's output equals this version"),
            )?;
            moved = true;
        }
        reporter.event(Event::ModelUnchanged(&msg));
        report.model_unchanged = Some(msg);
        return Ok(moved);
    }
    // Lineage: every source dep (a dep no stage produces) upstream of the
    // artifact's producer, with its digest.
    let mut chain: Vec<&str> = vec![reg.producer.as_str()];
    let mut data = serde_json::Map::new();
    let mut i = 0;
    while i < chain.len() {
        if let Some(stage) = project.pipeline.stage(chain[i]) {
            for u in &stage.upstream {
                if !chain.contains(&u.as_str()) {
                    chain.push(u.as_str());
                }
            }
            if let Some(l) = engine.locked(stage.name.as_str()) {
                for (dep, d) in &l.deps {
                    let produced = project.pipeline.stages.iter().any(|s| {
                        s.outs.iter().any(|o| {
                            ferry_spec::path_within(dep, o) || ferry_spec::path_within(o, dep)
                        })
                    });
                    if !produced {
                        data.insert(dep.clone(), serde_json::Value::String(d.digest.to_hex()));
                    }
                }
            }
        }
        i += 1;
    }
    let lineage = serde_json::json!({
        "pipeline": project.pipeline.name,
        "stages": chain,
        "data": data,
        "params": params,
        "metrics": metrics,
        "environment": env.map(|e| serde_json::json!({
            "fingerprint": e.fingerprint.to_hex(),
            "python": e.python_version,
            "platform": e.platform,
            "packages": e.packages,
        })),
    });
    let nv = NewModelVersion {
        model: model.clone(),
        run_id: Some(started.run_id.clone()),
        artifact_path: reg.artifact.clone(),
        artifact_digest: artifact.digest.to_hex(),
        artifact_size: artifact.size as i64,
        git_commit: crate::git::head_commit(&project.root),
        git_dirty: crate::git::is_dirty(&project.root),
        env_fingerprint: env.map(|e| e.fingerprint.to_hex()),
        lineage,
        created_ms: now_ms(),
        alias: reg.alias.clone(),
        source: Some(format!("runs:/{}/{}", started.run_id, reg.model)),
        stored: None,
    };
    let signature = match &reg.signature {
        None => None,
        Some(ferry_spec::SignatureSpec::Columns(s)) => Some(s.clone()),
        Some(ferry_spec::SignatureSpec::From { table, exclude }) => {
            Some(signature_of_table(project, table, exclude)?)
        }
    };
    let mut described = described_files(&reg.artifact, signature.as_ref(), &started.run_id);
    let mut nv = nv;
    if let Some((file, kept)) = reference_sample(project, &model)? {
        nv.lineage["reference"] = kept;
        described.push(file);
    }
    let v = recorder.register(started, project, &reg.artifact, &described, nv)?;
    reporter.event(Event::Registered(&v));
    report.registered = Some(v);
    Ok(true)
}

/// At most this many rows of a monitor's reference data are kept with a
/// version.
pub const REFERENCE_ROWS: u64 = 10_000;

/// The file a version keeps of its reference data, beside its model.
pub const REFERENCE_FILE: &str = "reference.csv";

/// What a version keeps of the reference data its monitor compares traffic
/// with (`monitor.reference`, else the table the signature is read from):
/// a bounded sample as a file of the version (so it is as immutable and
/// verified as the model), and what it says in the lineage.
fn reference_sample(
    project: &Project,
    model: &str,
) -> Result<Option<((String, String), serde_json::Value)>> {
    let Some(path) = (project.pipeline.monitor.as_ref())
        .filter(|m| m.model == model)
        .and_then(|m| m.reference.clone())
    else {
        return Ok(None);
    };
    let spec = ferry_data::TableSpec::new(project.root.join(&path).to_string_lossy());
    let sample = ferry_data::Table::open(&spec)
        .and_then(|t| ferry_data::sample::sample_csv(&t, REFERENCE_ROWS))
        .map_err(|e| Error::Reference(format!("monitor.reference `{path}`: {e}")))?;
    let kept = serde_json::json!({
        "source": path,
        "file": REFERENCE_FILE,
        "rows": sample.rows,
        "kept": sample.kept,
    });
    Ok(Some(((REFERENCE_FILE.to_owned(), sample.csv), kept)))
}

/// The signature a table of the project gives: its columns but `exclude`,
/// in order, with their types (`register.signature.from`).
fn signature_of_table(
    project: &Project,
    table: &str,
    exclude: &[String],
) -> Result<ferry_mlmodel::Signature> {
    use ferry_data::ColType as T;
    use ferry_mlmodel::ColType as M;
    let path = project.root.join(table);
    let bad = |message: String| Error::Signature {
        table: table.to_owned(),
        message,
    };
    let t = ferry_data::Table::open(&ferry_data::TableSpec::new(path.to_string_lossy()))
        .map_err(|e| bad(e.to_string()))?;
    for e in exclude {
        if t.schema.field_with_name(e).is_err() {
            return Err(bad(format!("it has no column `{e}` to exclude")));
        }
    }
    let mut inputs = Vec::new();
    for f in t.schema.fields() {
        if exclude.iter().any(|e| e == f.name()) {
            continue;
        }
        let ty = match T::of(f.data_type()) {
            Some(T::Int) => M::Long,
            Some(T::Float) => M::Double,
            Some(T::String) => M::String,
            Some(T::Bool) => M::Boolean,
            Some(T::Timestamp | T::Date) => M::Datetime,
            None => {
                return Err(bad(format!(
                    "its column `{}` has a type a signature cannot name ({})",
                    f.name(),
                    f.data_type()
                )));
            }
        };
        inputs.push(ferry_mlmodel::Column {
            name: f.name().clone(),
            ty,
            required: true,
        });
    }
    if inputs.is_empty() {
        return Err(bad("no column is left for the signature".into()));
    }
    Ok(ferry_mlmodel::Signature { inputs })
}

/// MLflow's `MLmodel` for a registered ONNX file (the `onnx` and
/// `python_function` flavours, and the declared signature) and the pyfunc
/// loader it names, so the stock mlflow client loads ferry's versions and
/// predicts with them; nothing for other artifacts.
fn described_files(
    artifact: &str,
    signature: Option<&ferry_mlmodel::Signature>,
    run_id: &str,
) -> Vec<(String, String)> {
    let Some(name) = std::path::Path::new(artifact)
        .file_name()
        .and_then(|n| n.to_str())
        .filter(|n| n.ends_with(".onnx"))
    else {
        return Vec::new();
    };
    let ms = now_ms();
    let (y, m, d) = ferry_core::civil_from_days(ms.div_euclid(86_400_000));
    let t = ms.rem_euclid(86_400_000);
    let created = format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:03}000",
        t / 3_600_000,
        t / 60_000 % 60,
        t / 1000 % 60,
        t % 1000
    );
    ferry_mlmodel::onnx_model_files(
        name,
        signature,
        &ferry_mlmodel::Provenance {
            run_id: Some(run_id),
            utc_time_created: &created,
            model_uuid: ferry_core::RunId::generate().as_str(),
        },
    )
}

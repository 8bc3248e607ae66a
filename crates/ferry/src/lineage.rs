//! `ferry lineage`: where a registered version came from (its run, the
//! stages that built it, the commit, every data file and code file by path
//! and digest, the environment), and the reverse: every version built from
//! a given piece of data.

use crate::cli::Place;
use crate::commands::{latest_not_rejected, parse_ref, resolve};
use crate::ctx::Ctx;
use crate::exit::{self, usage};
use crate::ui::{bytes, print_json, printable, short};
use anyhow::Result;
use ferry_core::ModelRef;
use ferry_metadata::ModelVersion;

pub(crate) fn lineage(
    ctx: &Ctx,
    model: Option<&str>,
    data: Option<&str>,
    json: bool,
    place: &Place,
) -> Result<u8> {
    let reg = ctx.reader(place)?.registry()?;
    let reg = reg.as_ref();
    if let Some(query) = data {
        let (path, digest) = match query.rsplit_once('@') {
            Some((p, d)) => (p, Some(d)),
            None => (query, None),
        };
        if digest.is_some_and(|d| d.is_empty() || !d.bytes().all(|b| b.is_ascii_hexdigit())) {
            return Err(usage(format!(
                "--data `{query}`: after `@` comes a digest (hex, a prefix is enough)"
            )));
        }
        let mut found = Vec::new();
        for m in reg.list_models()? {
            for v in reg.versions(&m.name)? {
                if let Some(d) = built_from(&v, path, digest) {
                    found.push(serde_json::json!({
                        "model": v.model, "version": v.version, "path": path, "digest": d,
                        "aliases": v.aliases,
                    }));
                }
            }
        }
        if json {
            print_json(&found)?;
        } else if found.is_empty() {
            eprintln!(
                "no registered version was built from `{}`",
                printable(query)
            );
        } else {
            for f in &found {
                let aliases = f["aliases"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(|s| format!(" @{s}")))
                            .collect::<String>()
                    })
                    .unwrap_or_default();
                println!(
                    "{}/{}{aliases}  {} {}",
                    f["model"].as_str().unwrap_or_default(),
                    f["version"],
                    printable(path),
                    f["digest"].as_str().map_or("", |d| short(d, 12))
                );
            }
        }
        return Ok(exit::OK);
    }
    let reference = model.unwrap_or_default();
    let v = match parse_ref(reference)? {
        ModelRef::Latest(name) => latest_not_rejected(reg, name.as_str())?,
        r => resolve(reg, &r)?,
    };
    if json {
        print_json(&serde_json::json!({
            "model": v.model,
            "version": v.version,
            "artifact": {"path": v.artifact_path, "digest": v.artifact_digest, "size": v.artifact_size},
            "run_id": v.run_id,
            "git_commit": v.git_commit,
            "git_dirty": v.git_dirty,
            "pipeline": v.lineage["pipeline"],
            "stages": v.lineage["stages"],
            "data": v.lineage["data"],
            "params": v.lineage["params"],
            "environment": v.lineage["environment"],
        }))?;
        return Ok(exit::OK);
    }
    print_lineage(&v);
    Ok(exit::OK)
}

/// The digest of `path` that `v` was built from, when it was (and the
/// digest starts with `prefix`, if given).
fn built_from(v: &ModelVersion, path: &str, prefix: Option<&str>) -> Option<String> {
    let d = v.lineage["data"].get(path)?.as_str()?;
    prefix
        .is_none_or(|p| d.starts_with(&p.to_ascii_lowercase()))
        .then(|| d.to_owned())
}

fn print_lineage(v: &ModelVersion) {
    let short = |d: &str| short(d, 12).to_owned();
    let aliases: String = v.aliases.iter().map(|a| format!(" @{a}")).collect();
    println!(
        "{}/{}{aliases}  {} ({}, {})",
        v.model,
        v.version,
        short(&v.artifact_digest),
        printable(&v.artifact_path),
        bytes(v.artifact_size)
    );
    let run = v.run_id.as_deref().map_or("-".to_owned(), &short);
    println!("  run       {run}");
    let commit = match (&v.git_commit, v.git_dirty) {
        (Some(c), Some(true)) => format!("{} (with uncommitted changes)", short(c)),
        (Some(c), _) => short(c),
        (None, _) => "not recorded (not a git repository)".to_owned(),
    };
    println!("  commit    {commit}");
    if let Some(stages) = v.lineage["stages"].as_array() {
        let names: Vec<&str> = stages.iter().filter_map(|s| s.as_str()).collect();
        println!("  stages    {}", names.join(", "));
    }
    if let Some(data) = v.lineage["data"].as_object() {
        let width = data.keys().map(|k| k.len()).max().unwrap_or(0);
        for (i, (path, d)) in data.iter().enumerate() {
            println!(
                "  {}  {:width$}  {}",
                if i == 0 { "inputs  " } else { "        " },
                printable(path),
                short(d.as_str().unwrap_or_default())
            );
        }
    }
    let env = &v.lineage["environment"];
    if let Some(fp) = env["fingerprint"].as_str() {
        println!(
            "  env       {} (python {}, {}, {} packages)",
            short(fp),
            env["python"].as_str().unwrap_or("?"),
            env["platform"].as_str().unwrap_or("?"),
            env["packages"].as_array().map_or(0, Vec::len)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_is_found_by_its_data_path_and_digest_prefix() {
        let v = ModelVersion {
            lineage: serde_json::json!({"data": {"data/iris.csv": "aeb5874b1118abcd"}}),
            ..ModelVersion::default()
        };
        assert_eq!(
            built_from(&v, "data/iris.csv", None).as_deref(),
            Some("aeb5874b1118abcd")
        );
        assert!(built_from(&v, "data/iris.csv", Some("AEB58")).is_some());
        assert!(built_from(&v, "data/iris.csv", Some("ffff")).is_none());
        assert!(built_from(&v, "data/other.csv", None).is_none());
    }
}

//! Data that no stage produces, versioned like code: `ferry add PATH`
//! records a file or folder by digest in a small pointer file beside it
//! (`PATH.ferry`, committed), keeps its bytes in the cache, and keeps the
//! data itself out of git (an entry in the `.gitignore` of its folder).
//! `checkout`, `push`, `fetch` and `gc` treat a pointer like a locked
//! output; `status` reports a pointer whose data changed.

use crate::engine::to_record;
use crate::{Error, Project, Result};
use ferry_cache::{Cache, Hasher, OutRecord, StatIndex};
use ferry_core::Digest;
use ferry_pipeline::LockedPath;
use std::path::{Path, PathBuf};

/// The suffix of a pointer file.
pub const POINTER_SUFFIX: &str = ".ferry";

/// One pointer: the data's path (relative to the project) and what it was.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Pointer {
    pub path: String,
    pub digest: Digest,
    pub size: u64,
    /// Files in a folder; absent for a file.
    pub files: Option<u64>,
}

impl Pointer {
    pub fn out(&self) -> OutRecord {
        to_record(
            &self.path,
            &LockedPath {
                digest: self.digest,
                size: self.size,
                files: self.files,
            },
        )
    }

    fn render(&self) -> String {
        let mut s = format!(
            "# Data tracked by ferry: its bytes are in the cache (`ferry checkout`, `ferry pull`), not in git.\npath: {}\ndigest: {}\nsize: {}\n",
            self.path, self.digest, self.size
        );
        if let Some(n) = self.files {
            s.push_str(&format!("files: {n}\n"));
        }
        s
    }

    /// Reads a pointer file's text; `rel` is the pointer's own path, for
    /// the errors and to check that it points at its neighbour.
    pub(crate) fn parse(rel: &str, text: &str) -> std::result::Result<Self, String> {
        let mut path = None;
        let mut digest = None;
        let mut size = None;
        let mut files = None;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((k, v)) = line.split_once(':') else {
                return Err(format!("{rel}:{}: expected `key: value`", n + 1));
            };
            let v = v.trim();
            let bad = |what: &str| format!("{rel}:{}: {k}: `{v}` is not {what}", n + 1);
            match k.trim() {
                "path" => path = Some(v.to_owned()),
                "digest" => digest = Some(v.parse::<Digest>().map_err(|_| bad("a digest"))?),
                "size" => size = Some(v.parse::<u64>().map_err(|_| bad("a size"))?),
                "files" => files = Some(v.parse::<u64>().map_err(|_| bad("a count"))?),
                other => return Err(format!("{rel}:{}: unknown key `{other}`", n + 1)),
            }
        }
        let missing = |k: &str| format!("{rel}: missing key `{k}`");
        let path = path.ok_or_else(|| missing("path"))?;
        let expected = rel.strip_suffix(POINTER_SUFFIX).unwrap_or(rel);
        if path != expected {
            return Err(format!(
                "{rel}: points at `{path}`, but a pointer describes its neighbour `{expected}`"
            ));
        }
        Ok(Self {
            path,
            digest: digest.ok_or_else(|| missing("digest"))?,
            size: size.ok_or_else(|| missing("size"))?,
            files,
        })
    }
}

/// Records `paths` (files or folders inside the project, relative to it):
/// hashed, stored in the cache, a pointer written beside each, and each
/// kept out of git. Returns the pointers.
pub fn add(project: &Project, paths: &[String]) -> Result<Vec<Pointer>> {
    let cache = Cache::new(&project.layout().cache()).with_link(project.pipeline.link);
    let mut hasher = cache.guard(Hasher::new(
        &project.root,
        StatIndex::load(&project.layout().index()),
    ));
    let mut added = Vec::new();
    for raw in paths {
        let rel = ferry_spec::normalize_path(raw).map_err(|why| Error::CannotAdd {
            path: raw.clone(),
            why,
        })?;
        if let Some(stage) = project.pipeline.stages.iter().find(|s| {
            s.outs
                .iter()
                .any(|o| o == &rel || rel.starts_with(&format!("{o}/")))
        }) {
            return Err(Error::CannotAdd {
                path: rel,
                why: format!(
                    "it is an out of stage `{}`: ferry.lock versions it already",
                    stage.name
                ),
            });
        }
        crate::confine::Confine::new(project).check(&rel)?;
        let pd = hasher.digest_path(&rel)?.ok_or_else(|| Error::CannotAdd {
            path: rel.clone(),
            why: "no such file or folder".into(),
        })?;
        cache.store(&project.root.join(&rel), &pd)?;
        let record = to_record(&rel, &crate::engine::to_locked(&pd));
        let pointer = Pointer {
            path: rel.clone(),
            digest: record.digest,
            size: record.size,
            files: record.files,
        };
        let file = project.root.join(format!("{rel}{POINTER_SUFFIX}"));
        ferry_fs::write_atomic(&file, pointer.render().as_bytes())?;
        ignore(&project.root, &rel)?;
        added.push(pointer);
    }
    let _ = hasher.save_index();
    ignore_ferry_dir(&project.layout().ferry_dir())?;
    Ok(added)
}

/// Keeps `.ferry/` (the cache the data now sits in, the index, this
/// machine's remotes.yaml) out of git in a project that `ferry init` did not
/// make (its .gitignore lists `.ferry/`): a `.gitignore` of `*` inside it,
/// unless there is one.
fn ignore_ferry_dir(dir: &Path) -> Result<()> {
    let file = dir.join(".gitignore");
    if file.exists() {
        return Ok(());
    }
    Ok(ferry_fs::write_atomic(
        &file,
        b"# ferry's cache and this machine's settings: never committed\n*\n",
    )?)
}

/// Adds `/<name>` to the `.gitignore` of the folder that holds `rel`,
/// unless it is there.
fn ignore(root: &Path, rel: &str) -> Result<()> {
    let (dir, name) = match rel.rsplit_once('/') {
        Some((d, n)) => (root.join(d), n),
        None => (root.to_owned(), rel),
    };
    let file = dir.join(".gitignore");
    let entry = format!("/{name}");
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    if text.lines().any(|l| l.trim() == entry) {
        return Ok(());
    }
    let mut new = text;
    if !new.is_empty() && !new.ends_with('\n') {
        new.push('\n');
    }
    new.push_str(&entry);
    new.push('\n');
    Ok(ferry_fs::write_atomic(&file, new.as_bytes())?)
}

/// Every pointer in the project, in path order. Skips hidden folders
/// (`.git`, `.ferry`, a `.venv`), the folders pointers describe and the stages' outs, so the walk stays
/// small however much data is tracked.
pub fn all(project: &Project) -> Result<Vec<Pointer>> {
    let skip: Vec<PathBuf> = project
        .pipeline
        .stages
        .iter()
        .flat_map(|s| s.outs.iter().map(|o| project.root.join(o)))
        .collect();
    let mut found = Vec::new();
    let mut dirs = vec![project.root.clone()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                let described = dir.join(format!("{name}{POINTER_SUFFIX}")).is_file();
                // Hidden folders (.git, .ferry, a .venv) hold no pointers.
                if !(name.starts_with('.') || described || skip.contains(&p)) {
                    dirs.push(p);
                }
            } else if ft.is_file() && name.ends_with(POINTER_SUFFIX) {
                let rel = p
                    .strip_prefix(&project.root)
                    .map(|r| r.to_string_lossy().replace('\\', "/"))
                    .unwrap_or_default();
                let text = std::fs::read_to_string(&p).map_err(|source| Error::Io {
                    action: "read",
                    path: p.clone(),
                    source,
                })?;
                found.push(Pointer::parse(&rel, &text).map_err(|message| Error::Io {
                    action: "read the pointer",
                    path: p.clone(),
                    source: std::io::Error::other(message),
                })?);
            }
        }
    }
    found.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_round_trip_and_refuse_what_they_cannot_be() {
        let p = Pointer {
            path: "data/raw".into(),
            digest: Digest::of(b"x"),
            size: 12,
            files: Some(3),
        };
        assert_eq!(Pointer::parse("data/raw.ferry", &p.render()), Ok(p.clone()));
        let moved = Pointer::parse("other.ferry", &p.render());
        assert!(moved.is_err_and(|e| e.contains("describes its neighbour `other`")));
        assert!(
            Pointer::parse("a.ferry", "path: a\nsize: x\n")
                .is_err_and(|e| e.starts_with("a.ferry:2: size"))
        );
        assert!(
            Pointer::parse("a.ferry", "path: a\n")
                .is_err_and(|e| e.contains("missing key `digest`"))
        );
    }
}

//! Where a command reads and writes runs, models and deployments: the
//! project's store, a store named by `--store`, or a `ferry server` named by
//! `--server` (`cli::Place`, flattened into every such command). One
//! resolution for all of them, so they agree on the default, on refusing
//! both at once, and on how a refusal reads.

use crate::cli::Place;
use crate::ctx::Ctx;
use crate::exit::usage;
use anyhow::Result;
use ferry_metadata::BlockingStore;
use ferry_runner::Layout;
use std::path::Path;

/// What `--server` / `--store` chose.
pub(crate) enum Target<'a> {
    /// Neither: the project's own store.
    Project,
    Store(&'a str),
    Server(&'a str),
}

/// How an option was given, for messages: `--server`, or `--server` (from
/// `FERRY_SERVER`) when its value is the environment's.
fn named(flag: &str, env: &str, value: &str) -> String {
    if std::env::var(env).is_ok_and(|v| v == value) {
        format!("`{flag}` (from `{env}`)")
    } else {
        format!("`{flag}`")
    }
}

impl Place {
    pub(crate) fn target(&self) -> Result<Target<'_>> {
        match (self.server.as_deref(), self.store.as_deref()) {
            (Some(server), Some(store)) => Err(usage(format!(
                "{} and {} both say where to work: give one\nhint: `--server URL` works through a `ferry server`, `--store URL` on a store directly",
                named("--server", "FERRY_SERVER", server),
                named("--store", "FERRY_STORE", store),
            ))),
            (Some(server), None) => Ok(Target::Server(server)),
            (None, Some(store)) => Ok(Target::Store(store)),
            (None, None) => Ok(Target::Project),
        }
    }

    /// `cmd` cannot work through `--server`: a usage error saying why and
    /// what to give instead.
    pub(crate) fn no_server(&self, cmd: &str, why: &str, hint: &str) -> anyhow::Error {
        let flag = named(
            "--server",
            "FERRY_SERVER",
            self.server.as_deref().unwrap_or_default(),
        );
        usage(format!(
            "`{cmd}` cannot work through {flag}: {why}\nhint: {hint}"
        ))
    }

    /// `cmd` cannot work on `--store`: a usage error saying why and what to
    /// give instead.
    pub(crate) fn no_store(&self, cmd: &str, why: &str, hint: &str) -> anyhow::Error {
        let flag = named(
            "--store",
            "FERRY_STORE",
            self.store.as_deref().unwrap_or_default(),
        );
        usage(format!(
            "`{cmd}` cannot work on {flag}: {why}\nhint: {hint}"
        ))
    }
}

/// The file a `sqlite://` URL names, if it names one.
fn sqlite_file(url: &str) -> Option<&Path> {
    let rest = url.strip_prefix("sqlite://")?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && !path.contains(":memory:")).then(|| Path::new(path))
}

/// A store `--store` names for reading: it must exist (opening a missing
/// SQLite file would make an empty store and report nothing).
fn existing(url: &str) -> Result<&str> {
    if let Some(f) = sqlite_file(url)
        && !f.is_file()
    {
        return Err(usage(format!(
            "--store `{url}`: no store at `{}`",
            f.display()
        )));
    }
    Ok(url)
}

/// What a read command reads: a store (the project's or `--store`'s) or a
/// `ferry server`.
pub(crate) enum Reader {
    Store {
        store: BlockingStore,
        /// The project's files (stage logs, artifacts); none for `--store`.
        layout: Option<Layout>,
    },
    Server(String),
}

impl Reader {
    /// Run history (`ferry runs`, `ferry logs`).
    pub(crate) fn history(self) -> Result<Box<dyn ferry_runner::History>> {
        match self {
            Reader::Store { store, layout } => Ok(ferry_runner::local_history(store, layout)),
            Reader::Server(url) => {
                ferry_runner::remote_history(&url).map_err(|e| usage(e.to_string()))
            }
        }
    }

    /// The model registry (`ferry models`).
    pub(crate) fn registry(self) -> Result<Box<dyn ferry_runner::Registry>> {
        match self {
            Reader::Store { store, .. } => Ok(ferry_runner::local_registry(store)),
            Reader::Server(url) => {
                ferry_runner::remote_registry(&url).map_err(|e| usage(e.to_string()))
            }
        }
    }
}

impl Ctx {
    /// The project's store, or `--store`'s, or the `ferry server` at
    /// `--server`: what every read command (`runs`, `logs`, `models`) reads.
    pub(crate) fn reader(&self, place: &Place) -> Result<Reader> {
        Ok(match place.target()? {
            Target::Server(url) => Reader::Server(url.to_owned()),
            Target::Store(url) => Reader::Store {
                store: BlockingStore::open(existing(url)?)?,
                layout: None,
            },
            Target::Project => {
                let layout = Layout::new(ferry_runner::Project::discover(&self.cwd)?);
                if !layout.db().exists() {
                    return Err(usage(format!(
                        "no runs recorded yet in `{}`: run `ferry run` first\nhint: or read another store with `--store URL` or a `ferry server` with `--server URL`",
                        layout.root().display()
                    )));
                }
                Reader::Store {
                    store: BlockingStore::open(&layout.store_url())?,
                    layout: Some(layout),
                }
            }
        })
    }

    /// The store URL a command that opens the store itself works on
    /// (`serve`, `deploy`, `server`), and the layout of the project its
    /// other defaults (artifacts, prediction log) are in: of the current
    /// folder when it holds no project. `--server` is refused with `why`. With
    /// `create`, a project store that does not exist yet is made (the
    /// tracking server starts empty); otherwise it must exist.
    pub(crate) fn store_url(
        &self,
        place: &Place,
        cmd: &str,
        why: &str,
        create: bool,
    ) -> Result<(String, Layout)> {
        let layout = Layout::new(
            ferry_runner::Project::discover(&self.cwd).unwrap_or_else(|_| self.cwd.clone()),
        );
        let url = match place.target()? {
            Target::Server(_) => {
                return Err(place.no_server(
                    cmd,
                    why,
                    "give the store that `ferry server` works on with `--store URL`",
                ));
            }
            Target::Store(url) if create => url.to_owned(),
            Target::Store(url) => existing(url)?.to_owned(),
            Target::Project => {
                let ferry_dir = layout.ferry_dir();
                if create {
                    std::fs::create_dir_all(&ferry_dir).map_err(|e| {
                        anyhow::anyhow!("cannot create `{}`: {e}", ferry_dir.display())
                    })?;
                } else if !layout.db().exists() {
                    return Err(usage(format!(
                        "no store in `{}`: run `ferry run` first\nhint: or give another store with `--store URL`",
                        layout.root().display()
                    )));
                }
                layout.store_url()
            }
        };
        Ok((url, layout))
    }
}

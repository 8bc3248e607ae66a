//! Push, fetch, status and garbage collection between the local cache and a
//! remote. Work is planned as a list of cache keys, what the remote holds is
//! learnt with as few requests as possible (the known record, then one
//! listing per key fan-out folder when many keys are unknown, else a HEAD
//! each), and transfers run `jobs` at a time.

use crate::known::Known;
use crate::landing::{Kind, Landed, Landing};
use crate::{Error, Options, Remote, Result};
use bytes::Bytes;
use ferry_cache::layout::{manifest_key, object_key, run_key};
use ferry_cache::{Cache, Manifest, OutRecord};
use ferry_core::Digest;
use futures_util::StreamExt;
use object_store::{ObjectStoreExt, PutMode, WriteMultipart};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

/// Above this size a file is uploaded in parts, read from disk a part at a
/// time, so memory stays bounded whatever the file's size.
const MULTIPART_ABOVE: u64 = 32 * 1024 * 1024;
const PART_SIZE: usize = 8 * 1024 * 1024;
/// Parts of one file in flight at once.
const PARTS_IN_FLIGHT: usize = 4;
/// Above this many unknown keys, list the remote instead of asking per key.
const LIST_ABOVE: usize = 64;
/// Listings in flight at once.
const LISTINGS: usize = 16;
/// Keys downloaded between two syncs of the cache's filesystem.
const BATCH: usize = 2048;
/// Bytes of a service's download written to disk at a time.
const WRITE_BUF: usize = 1024 * 1024;

/// What a transfer is about: stage outputs (files and folders) and the
/// run-cache entries of stage fingerprints.
#[derive(Debug, Clone, Default)]
pub struct Want {
    pub outs: Vec<OutRecord>,
    pub runs: Vec<Digest>,
}

/// Told how a transfer goes, for a progress bar.
pub trait Progress: Sync {
    /// The work ahead: files and bytes.
    fn begin(&self, files: u64, bytes: u64);
    /// One file done, of this many bytes.
    fn advance(&self, bytes: u64);
}

impl Progress for () {
    fn begin(&self, _: u64, _: u64) {}
    fn advance(&self, _: u64) {}
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Failure {
    pub key: String,
    pub error: String,
}

/// What a push or a fetch did.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Summary {
    pub remote: String,
    /// Keys the transfer was about.
    pub considered: u64,
    /// Keys sent or received.
    pub transferred: u64,
    pub bytes: u64,
    /// Keys already where they were to go.
    pub up_to_date: u64,
    /// Keys that are neither here nor there (for a push: not in the local
    /// cache; for a fetch: not on the remote).
    pub missing: Vec<String>,
    pub failed: Vec<Failure>,
    /// Keys not tried: the transfer stopped at the first failure of the
    /// service itself (after its retries), instead of failing each key.
    pub not_attempted: u64,
}

/// Where each key of a [`Want`] is.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RemoteStatus {
    pub remote: String,
    pub in_sync: u64,
    /// Here, not there: `ferry push` sends them.
    pub to_push: Vec<String>,
    /// There, not here: `ferry fetch` brings them.
    pub to_fetch: Vec<String>,
    /// Neither here nor there.
    pub missing: Vec<String>,
}

/// What `gc --remote` removed, or would remove.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct GcReport {
    pub remote: String,
    pub dry_run: bool,
    pub kept: u64,
    pub removed: u64,
    pub removed_bytes: u64,
    /// Unreferenced, but too recent to remove (a push may be under way).
    pub too_recent: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Item {
    kind: Kind,
    key: String,
    digest: Digest,
}

impl Item {
    fn object(d: Digest) -> Self {
        Self {
            kind: Kind::Object,
            key: object_key(&d),
            digest: d,
        }
    }
    fn manifest(d: Digest) -> Self {
        Self {
            kind: Kind::Manifest,
            key: manifest_key(&d),
            digest: d,
        }
    }
    fn run(fp: Digest) -> Self {
        Self {
            kind: Kind::Run,
            key: run_key(&fp),
            digest: fp,
        }
    }
    fn local(&self, cache: &Cache) -> PathBuf {
        match self.kind {
            Kind::Object => cache.object_path(&self.digest),
            Kind::Manifest => cache.manifest_path(&self.digest),
            Kind::Run => cache.run_path(&self.digest),
        }
    }
}

/// The keys of `want`, reading manifests from the local cache (and, for
/// `fetch`, from the remote when they are not here yet: see
/// [`Remote::fetch`]). Folders whose manifest is nowhere are returned apart.
fn expand(cache: &Cache, want: &Want) -> Result<(BTreeSet<Item>, Vec<Digest>)> {
    let mut items = BTreeSet::new();
    let mut no_manifest = Vec::new();
    for out in &want.outs {
        if out.files.is_some() {
            items.insert(Item::manifest(out.digest));
            match cache.manifest(&out.digest)? {
                Some(m) => items.extend(m.entries.iter().map(|e| Item::object(e.digest))),
                None if !no_manifest.contains(&out.digest) => no_manifest.push(out.digest),
                None => {}
            }
        } else {
            items.insert(Item::object(out.digest));
        }
    }
    for fp in &want.runs {
        items.insert(Item::run(*fp));
        // A run entry's outputs travel with it.
        if let Some(entry) = cache.run_entry(fp)? {
            for out in &entry.outs {
                if out.files.is_some() {
                    items.insert(Item::manifest(out.digest));
                    if let Some(m) = cache.manifest(&out.digest)? {
                        items.extend(m.entries.iter().map(|e| Item::object(e.digest)));
                    }
                } else {
                    items.insert(Item::object(out.digest));
                }
            }
        }
    }
    Ok((items, no_manifest))
}

impl Remote {
    /// Sends what `want` names and the remote lacks.
    pub fn push(
        &self,
        cache: &Cache,
        want: &Want,
        opts: Options,
        progress: &dyn Progress,
    ) -> Result<Summary> {
        let (items, _) = expand(cache, want)?;
        let mut summary = self.summary(items.len());
        let (here, absent): (Vec<Item>, Vec<Item>) =
            items.into_iter().partition(|i| i.local(cache).exists());
        summary.missing = absent.into_iter().map(|i| i.key).collect();
        let mut known = self.known(opts.verify);
        let unknown: Vec<Item> = here.into_iter().filter(|i| !known.has(&i.key)).collect();
        self.rt.block_on(async {
            if !unknown.is_empty() {
                self.probe().await?;
            }
            self.discover(&unknown, &mut known).await
        })?;
        let send: Vec<Item> = unknown.into_iter().filter(|i| !known.has(&i.key)).collect();
        summary.up_to_date = summary
            .considered
            .saturating_sub(summary.missing.len() as u64)
            .saturating_sub(send.len() as u64);
        let bytes: u64 = send
            .iter()
            .filter_map(|i| std::fs::metadata(i.local(cache)).ok())
            .map(|m| m.len())
            .sum();
        progress.begin(send.len() as u64, bytes);
        // Files, then manifests, then run entries: nothing on the remote
        // ever points at what is not there yet.
        let stop = AtomicBool::new(false);
        for kind in [Kind::Object, Kind::Manifest, Kind::Run] {
            let batch: Vec<&Item> = send.iter().filter(|i| i.kind == kind).collect();
            let done = self
                .rt
                .block_on(self.each(&batch, opts.jobs, &stop, |item| {
                    self.upload(item.clone(), item.local(cache), progress)
                }));
            let failed_before = summary.failed.len();
            // Durable before the next kind points at it, and before the
            // record says the remote holds it.
            if let Some(dir) = self.folder.as_ref().filter(|_| !batch.is_empty()) {
                ferry_fs::sync_filesystem(dir).map_err(|e| Error::Store {
                    remote: self.name.clone(),
                    op: "sync",
                    key: dir.display().to_string(),
                    message: e.to_string(),
                })?;
            }
            self.tally(&mut summary, &mut known, done);
            if summary.failed.len() > failed_before || summary.not_attempted > 0 {
                // What depends on a failed object must not be sent.
                summary.not_attempted += send.iter().filter(|i| i.kind > kind).count() as u64;
                break;
            }
        }
        self.save(&mut known)?;
        Ok(summary)
    }

    /// Brings what `want` names and the local cache lacks, each verified
    /// before it enters the cache.
    pub fn fetch(
        &self,
        cache: &Cache,
        want: &Want,
        opts: Options,
        progress: &dyn Progress,
    ) -> Result<Summary> {
        let mut known = self.known(opts.verify);
        // Run entries first: their outputs join the want.
        let mut want = want.clone();
        let runs: Vec<Item> = want
            .runs
            .iter()
            .map(|fp| Item::run(*fp))
            .filter(|i| !i.local(cache).exists())
            .collect::<BTreeSet<Item>>()
            .into_iter()
            .collect();
        let done = self.download_all(cache, &runs, opts.jobs, &())?;
        let mut pre = self.summary(0);
        self.tally(&mut pre, &mut known, done);
        for fp in &want.runs {
            if let Some(entry) = cache.run_entry(fp)? {
                want.outs.extend(entry.outs);
            }
        }
        // Then the manifests of folders, so their files are known.
        let (_, no_manifest) = expand(cache, &want)?;
        let manifests: Vec<Item> = no_manifest.into_iter().map(Item::manifest).collect();
        let done = self.download_all(cache, &manifests, opts.jobs, &())?;
        self.tally(&mut pre, &mut known, done);
        // What failed or was not there already is not asked for again.
        let settled: BTreeSet<String> = pre
            .failed
            .iter()
            .map(|f| f.key.clone())
            .chain(pre.missing.iter().cloned())
            .collect();
        let (items, _) = expand(cache, &want)?;
        let mut summary = self.summary(items.len());
        summary.transferred = pre.transferred;
        summary.bytes = pre.bytes;
        summary.failed = pre.failed;
        summary.missing = pre.missing;
        summary.not_attempted = pre.not_attempted;
        let get: Vec<Item> = items
            .into_iter()
            .filter(|i| !settled.contains(&i.key) && !i.local(cache).exists())
            .collect();
        summary.up_to_date = summary
            .considered
            .saturating_sub(get.len() as u64)
            .saturating_sub(summary.transferred)
            .saturating_sub(summary.missing.len() as u64)
            .saturating_sub(summary.failed.len() as u64)
            .saturating_sub(summary.not_attempted);
        progress.begin(get.len() as u64, 0);
        let done = self.download_all(cache, &get, opts.jobs, progress)?;
        self.tally(&mut summary, &mut known, done);
        self.save(&mut known)?;
        Ok(summary)
    }

    /// Brings the run-cache entry of `fingerprint` and its outputs into
    /// `cache`: `Ok(false)` when the remote lacks any of it. One request
    /// when the remote has no such entry.
    pub fn fetch_run(&self, cache: &Cache, fingerprint: &Digest) -> Result<bool> {
        let want = Want {
            outs: Vec::new(),
            runs: vec![*fingerprint],
        };
        let s = self.fetch(cache, &want, Options::default(), &())?;
        if let Some(f) = s.failed.first() {
            return Err(Error::Store {
                remote: self.name.clone(),
                op: "fetch",
                key: f.key.clone(),
                message: f.error.clone(),
            });
        }
        Ok(s.missing.is_empty() && cache.run_path(fingerprint).exists())
    }

    /// Sends the run-cache entry of `fingerprint` and its outputs.
    pub fn push_run(&self, cache: &Cache, fingerprint: &Digest) -> Result<()> {
        let want = Want {
            outs: Vec::new(),
            runs: vec![*fingerprint],
        };
        self.push_all(cache, &want)
    }

    /// Sends `outs` (files and folders in `cache`) that the remote lacks;
    /// one the cache does not have is an error naming it.
    pub fn push_files(&self, cache: &Cache, outs: &[OutRecord]) -> Result<()> {
        let want = Want {
            outs: outs.to_vec(),
            runs: Vec::new(),
        };
        self.push_all(cache, &want)
    }

    /// [`Remote::push`] of `want`, its first failure an error.
    fn push_all(&self, cache: &Cache, want: &Want) -> Result<()> {
        let s = self.push(cache, want, Options::default(), &())?;
        self.whole("push", &s)
    }

    /// Brings `outs` that `cache` lacks, each verified; one the remote does
    /// not have is an error naming it.
    pub fn fetch_files(&self, cache: &Cache, outs: &[OutRecord]) -> Result<()> {
        let want = Want {
            outs: outs.to_vec(),
            runs: Vec::new(),
        };
        let s = self.fetch(cache, &want, Options::default(), &())?;
        self.whole("fetch", &s)
    }

    /// Whether a transfer moved everything: its first failed or missing key
    /// otherwise.
    fn whole(&self, op: &'static str, s: &Summary) -> Result<()> {
        if let Some(f) = s.failed.first() {
            return Err(Error::Store {
                remote: self.name.clone(),
                op,
                key: f.key.clone(),
                message: f.error.clone(),
            });
        }
        match s.missing.first() {
            Some(key) => Err(Error::Store {
                remote: self.name.clone(),
                op,
                key: key.clone(),
                message: if op == "push" {
                    "not in the local cache".into()
                } else {
                    "not on the remote".into()
                },
            }),
            None => Ok(()),
        }
    }

    /// Brings `items` into the cache, `jobs` at a time, after checking the
    /// bucket when there is anything to bring; in batches, each made
    /// durable at once before its keys are renamed in.
    fn download_all(
        &self,
        cache: &Cache,
        items: &[Item],
        jobs: usize,
        progress: &dyn Progress,
    ) -> Result<Vec<(String, Result<Moved>)>> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        self.rt.block_on(async {
            self.probe().await?;
            let stop = AtomicBool::new(false);
            let mut done = Vec::with_capacity(items.len());
            for batch in items.chunks(BATCH) {
                let batch: Vec<&Item> = batch.iter().collect();
                let got = self
                    .each(&batch, jobs, &stop, |i| {
                        self.download(i, i.local(cache), progress)
                    })
                    .await;
                done.extend(settle(got).await?);
            }
            Ok(done)
        })
    }

    /// Where each key of `want` is: here, there, both or neither.
    pub fn status(&self, cache: &Cache, want: &Want, opts: Options) -> Result<RemoteStatus> {
        // A folder whose manifest is only on the remote counts as its
        // manifest, one key to fetch: its files are unknown until then.
        let (items, _) = expand(cache, want)?;
        let mut known = self.known(opts.verify);
        let unknown: Vec<Item> = items
            .iter()
            .filter(|i| !known.has(&i.key))
            .cloned()
            .collect();
        self.rt.block_on(async {
            if !unknown.is_empty() {
                self.probe().await?;
            }
            self.discover(&unknown, &mut known).await
        })?;
        let mut st = RemoteStatus {
            remote: self.name.clone(),
            ..RemoteStatus::default()
        };
        for i in items {
            match (i.local(cache).exists(), known.has(&i.key)) {
                (true, true) => st.in_sync += 1,
                (true, false) => st.to_push.push(i.key),
                (false, true) => st.to_fetch.push(i.key),
                (false, false) => st.missing.push(i.key),
            }
        }
        self.save(&mut known)?;
        Ok(st)
    }

    /// Removes from the remote every object and run entry that `keep` does
    /// not reach and that is older than `min_age_ms`; with `dry_run`, only
    /// counts. Folders in `keep` whose manifest is not local are read from
    /// the remote, so nothing they list is removed.
    pub fn gc(
        &self,
        cache: &Cache,
        keep: &Want,
        min_age_ms: i64,
        now_ms: i64,
        dry_run: bool,
    ) -> Result<GcReport> {
        let (mut items, no_manifest) = expand(cache, keep)?;
        self.rt.block_on(self.probe())?;
        for d in no_manifest {
            let key = manifest_key(&d);
            let bytes = self
                .rt
                .block_on(async { self.store.get(&self.path(&key)).await?.bytes().await })
                .map_err(|e| self.store_error("read", &key, &e))?;
            let m: Manifest = serde_json::from_slice(&bytes).map_err(|e| Error::Store {
                remote: self.name.clone(),
                op: "read",
                key: key.clone(),
                message: format!("not a folder manifest: {e}"),
            })?;
            items.extend(m.entries.iter().map(|e| Item::object(e.digest)));
        }
        let keep: BTreeSet<String> = items.into_iter().map(|i| i.key).collect();
        let listed = self.rt.block_on(self.list_all())?;
        let mut report = GcReport {
            remote: self.name.clone(),
            dry_run,
            ..GcReport::default()
        };
        let mut doomed = Vec::new();
        for (key, meta) in listed {
            if keep.contains(&key) {
                report.kept += 1;
            } else if now_ms - meta.last_modified.timestamp_millis() < min_age_ms {
                report.too_recent += 1;
            } else {
                report.removed += 1;
                report.removed_bytes += meta.size;
                doomed.push(key);
            }
        }
        if !dry_run && !doomed.is_empty() {
            let mut known = self.known(false);
            let paths: Vec<object_store::path::Path> =
                doomed.iter().map(|k| self.path(k)).collect();
            self.rt.block_on(async {
                let stream = futures_util::stream::iter(paths.into_iter().map(Ok)).boxed();
                let mut results = self.store.delete_stream(stream);
                while let Some(r) = results.next().await {
                    match r {
                        Ok(_) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(e) => return Err(self.store_error("delete", "objects", &e)),
                    }
                }
                Ok(())
            })?;
            for k in &doomed {
                known.remove(k);
            }
            self.save(&mut known)?;
        }
        Ok(report)
    }

    fn summary(&self, considered: usize) -> Summary {
        Summary {
            remote: self.name.clone(),
            considered: considered as u64,
            ..Summary::default()
        }
    }

    fn known(&self, verify: bool) -> Known {
        let mut k = Known::load(&self.known_file, &self.url);
        if verify {
            k.clear();
        }
        k
    }

    fn save(&self, known: &mut Known) -> Result<()> {
        known.save().map_err(|source| Error::Io {
            what: "write",
            path: self.known_file.clone(),
            source,
        })
    }

    fn tally(&self, summary: &mut Summary, known: &mut Known, done: Vec<(String, Result<Moved>)>) {
        for (key, r) in done {
            match r {
                Ok(Moved::Sent(bytes)) => {
                    summary.transferred += 1;
                    summary.bytes += bytes;
                    known.add(key);
                }
                Ok(Moved::Already) => {
                    summary.up_to_date += 1;
                    known.add(key);
                }
                Ok(Moved::Absent) => summary.missing.push(key),
                Ok(Moved::NotAttempted) => summary.not_attempted += 1,
                Err(e) => summary.failed.push(Failure {
                    key,
                    error: e.to_string(),
                }),
            }
        }
        summary.failed.sort_by(|a, b| a.key.cmp(&b.key));
        summary.missing.sort();
        summary.missing.dedup();
    }

    /// One listing before the first request whose answer matters, so that a
    /// remote that cannot be used at all (no such bucket, credentials
    /// refused, no answer after every retry) fails once, with the reason,
    /// instead of once per key. Made once per opened remote.
    async fn probe(&self) -> Result<()> {
        if self.probed.load(std::sync::atomic::Ordering::Acquire) {
            return Ok(());
        }
        let prefix =
            (!self.prefix.is_empty()).then(|| object_store::path::Path::from(self.prefix.as_str()));
        match self.store.list_with_delimiter(prefix.as_ref()).await {
            Ok(_) => {
                self.probed
                    .store(true, std::sync::atomic::Ordering::Release);
                Ok(())
            }
            Err(e) => Err(Error::Unavailable {
                remote: self.name.clone(),
                message: crate::unavailable(&e, &self.url),
            }),
        }
    }

    /// Runs `f` over `items`, `jobs` at a time; each result with its key.
    /// The first failure of the service itself sets `stop`, which stops
    /// the rest (here and in the calls sharing it): each would only wait
    /// through the same retries to fail the same way.
    async fn each<'a, F, Fut, T>(
        &self,
        items: &[&'a Item],
        jobs: usize,
        stop: &AtomicBool,
        f: F,
    ) -> Vec<(String, Result<T>)>
    where
        F: Fn(&'a Item) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
        T: From<Moved>,
    {
        let f = &f;
        futures_util::stream::iter(items.iter().map(|i| async move {
            if stop.load(std::sync::atomic::Ordering::Acquire) {
                return (i.key.clone(), Ok(Moved::NotAttempted.into()));
            }
            let r = f(i).await;
            if r.as_ref().is_err_and(Error::is_service_failure) {
                stop.store(true, std::sync::atomic::Ordering::Release);
            }
            (i.key.clone(), r)
        }))
        .buffer_unordered(jobs.max(1))
        .collect()
        .await
    }

    /// Learns which of `unknown` the remote holds: one listing per fan-out
    /// folder when there are many, a HEAD each when few.
    async fn discover(&self, unknown: &[Item], known: &mut Known) -> Result<()> {
        if unknown.is_empty() {
            return Ok(());
        }
        if unknown.len() > LIST_ABOVE {
            let folders: BTreeSet<String> = unknown
                .iter()
                .filter_map(|i| i.key.rsplit_once('/').map(|(dir, _)| dir.to_owned()))
                .collect();
            for (key, _) in self.list(folders).await? {
                known.add(key);
            }
            return Ok(());
        }
        let found: Vec<Result<Option<String>>> =
            futures_util::stream::iter(unknown.iter().map(|i| async move {
                match self.store.head(&self.path(&i.key)).await {
                    Ok(_) => Ok(Some(i.key.clone())),
                    Err(object_store::Error::NotFound { .. }) => Ok(None),
                    Err(e) => Err(self.store_error("look up", &i.key, &e)),
                }
            }))
            .buffer_unordered(LISTINGS)
            .collect()
            .await;
        for f in found {
            if let Some(k) = f? {
                known.add(k);
            }
        }
        Ok(())
    }

    /// Every key under `folders` (cache-key folders such as `objects/ab`),
    /// listed concurrently.
    async fn list(
        &self,
        folders: BTreeSet<String>,
    ) -> Result<Vec<(String, object_store::ObjectMeta)>> {
        let lists: Vec<Result<Vec<object_store::ObjectMeta>>> =
            futures_util::stream::iter(folders.into_iter().map(|dir| async move {
                let prefix = self.path(&dir);
                let mut out = Vec::new();
                let mut s = self.store.list(Some(&prefix));
                while let Some(m) = s.next().await {
                    match m {
                        Ok(m) => out.push(m),
                        Err(object_store::Error::NotFound { .. }) => break,
                        Err(e) => return Err(self.store_error("list", &dir, &e)),
                    }
                }
                Ok(out)
            }))
            .buffer_unordered(LISTINGS)
            .collect()
            .await;
        let mut all = Vec::new();
        for l in lists {
            for m in l? {
                if let Some(k) = self.key_of(&m.location).filter(|k| is_cache_key(k)) {
                    all.push((k, m));
                }
            }
        }
        Ok(all)
    }

    /// Every cache key on the remote (256 fan-out folders each for objects
    /// and runs, listed concurrently).
    async fn list_all(&self) -> Result<Vec<(String, object_store::ObjectMeta)>> {
        let mut folders = BTreeSet::new();
        for top in ["objects", "runs"] {
            for b in 0..=255u8 {
                folders.insert(format!("{top}/{b:02x}"));
            }
        }
        self.list(folders).await
    }

    /// Sends one cache file, checking on the way that its bytes still have
    /// the digest it is stored under (a remote is never poisoned by a local
    /// disk's rot).
    async fn upload(&self, item: Item, local: PathBuf, progress: &dyn Progress) -> Result<Moved> {
        let io = |what: &'static str| {
            let path = local.clone();
            move |source| Error::Io { what, path, source }
        };
        let size = tokio::fs::metadata(&local).await.map_err(io("read"))?.len();
        let path = self.path(&item.key);
        let bytes = if size > MULTIPART_ABOVE && item.kind == Kind::Object {
            self.upload_parts(&item, &local, &path).await?
        } else {
            // Read and checked on a blocking thread, the body dropped by
            // the store once sent: at most `jobs` bodies are held.
            let (it, read_error) = (item.clone(), io("read"));
            let body = blocking(move || {
                let body = std::fs::read(&local).map_err(read_error)?;
                check_local(&it, &body)?;
                Ok(Bytes::from(body))
            })
            .await?;
            let created = self
                .store
                .put_opts(&path, body.clone().into(), PutMode::Create.into())
                .await;
            match created {
                Ok(_) => size,
                Err(object_store::Error::AlreadyExists { .. }) => return Ok(Moved::Already),
                Err(
                    object_store::Error::NotImplemented { .. }
                    | object_store::Error::NotSupported { .. },
                ) => {
                    // No create-if-absent here: the same bytes under the
                    // same name are harmless.
                    self.store
                        .put(&path, body.into())
                        .await
                        .map_err(|e| self.store_error("upload", &item.key, &e))?;
                    size
                }
                Err(e) => return Err(self.store_error("upload", &item.key, &e)),
            }
        };
        progress.advance(bytes);
        Ok(Moved::Sent(bytes))
    }

    async fn upload_parts(
        &self,
        item: &Item,
        local: &Path,
        path: &object_store::path::Path,
    ) -> Result<u64> {
        use tokio::io::AsyncReadExt;
        let io = |what: &'static str| {
            let path = local.to_owned();
            move |source| Error::Io { what, path, source }
        };
        let upload = self
            .store
            .put_multipart(path)
            .await
            .map_err(|e| self.store_error("upload", &item.key, &e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut file = tokio::fs::File::open(local).await.map_err(io("open"))?;
        let mut hasher = blake3::Hasher::new();
        let mut total = 0u64;
        let mut buf = vec![0u8; PART_SIZE];
        loop {
            let n = file.read(&mut buf).await.map_err(io("read"))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            total += n as u64;
            if let Err(e) = writer.wait_for_capacity(PARTS_IN_FLIGHT).await {
                return Err(self.store_error("upload", &item.key, &e));
            }
            writer.write(&buf[..n]);
        }
        if Digest::from_bytes(*hasher.finalize().as_bytes()) != item.digest {
            let _ = writer.abort().await;
            return Err(corrupt_local(item, local));
        }
        writer
            .finish()
            .await
            .map_err(|e| self.store_error("upload", &item.key, &e))?;
        Ok(total)
    }

    /// Brings one key to a checked temporary file beside its place in the
    /// cache (see [`crate::landing`]): a folder remote's file is copied on a
    /// blocking thread, a service's stream written a buffer at a time. A
    /// key already in the cache (the caller skipped those it saw) is
    /// requested, but not written again.
    async fn download(&self, item: &Item, dest: PathBuf, progress: &dyn Progress) -> Result<Got> {
        let got = match self.store.get(&self.path(&item.key)).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => return Ok(Moved::Absent.into()),
            Err(e) => return Err(self.store_error("download", &item.key, &e)),
        };
        let (kind, digest) = (item.kind, item.digest);
        let len = got.range.end - got.range.start;
        let landed = match got.payload {
            object_store::GetResultPayload::File(file, source) => {
                blocking(move || {
                    let Some(mut landing) = Landing::open(kind, digest, dest)? else {
                        return Ok(None);
                    };
                    landing.copy_from(file, len, &source)?;
                    landing.finish().map(Some)
                })
                .await?
            }
            object_store::GetResultPayload::Stream(stream) => {
                self.land_stream(item, dest, stream).await?
            }
        };
        match landed {
            Some(Some(l)) => {
                progress.advance(l.bytes);
                Ok(Got::Landed(l))
            }
            Some(None) => Err(Error::Store {
                remote: self.name.clone(),
                op: "verify",
                key: item.key.clone(),
                message: "the remote's copy is corrupt (its content does not match its digest); it was not used".into(),
            }),
            None => Ok(Moved::Already.into()),
        }
    }

    /// Writes a service's stream to the key's temporary file, a buffer at a
    /// time on a blocking thread. `None`: the key arrived meanwhile;
    /// `Some(None)`: the bytes are not what the key must hold.
    async fn land_stream(
        &self,
        item: &Item,
        dest: PathBuf,
        mut stream: futures_util::stream::BoxStream<'static, object_store::Result<Bytes>>,
    ) -> Result<Option<Option<Landed>>> {
        let (kind, digest) = (item.kind, item.digest);
        let Some(mut landing) = blocking(move || Landing::open(kind, digest, dest)).await? else {
            return Ok(None);
        };
        let mut buf = Vec::with_capacity(WRITE_BUF);
        let mut end = false;
        while !end {
            match stream.next().await {
                Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
                Some(Err(e)) => {
                    // Dropping the landing removes its temporary file.
                    let _ = blocking(move || {
                        drop(landing);
                        Ok(())
                    })
                    .await;
                    return Err(self.store_error("download", &item.key, &e));
                }
                None => end = true,
            }
            if buf.len() >= WRITE_BUF || (end && !buf.is_empty()) {
                (landing, buf) = blocking(move || {
                    landing.write(&buf)?;
                    buf.clear();
                    Ok((landing, buf))
                })
                .await?;
            }
        }
        blocking(move || landing.finish()).await.map(Some)
    }
}

/// Runs blocking filesystem work off the runtime's workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => Err(Error::Io {
            what: "finish",
            path: PathBuf::new(),
            source: std::io::Error::other(e),
        }),
    }
}

/// Makes a batch's landed keys durable and renames them in; the other
/// results pass through.
async fn settle(got: Vec<(String, Result<Got>)>) -> Result<Vec<(String, Result<Moved>)>> {
    let mut done = Vec::with_capacity(got.len());
    let (mut keys, mut landed) = (Vec::new(), Vec::new());
    for (key, r) in got {
        match r {
            Ok(Got::Landed(l)) => {
                keys.push(key);
                landed.push(l);
            }
            Ok(Got::Moved(m)) => done.push((key, Ok(m))),
            Err(e) => done.push((key, Err(e))),
        }
    }
    if !landed.is_empty() {
        let renamed = blocking(move || crate::landing::publish(landed)).await?;
        done.extend(
            keys.into_iter()
                .zip(renamed)
                .map(|(k, r)| (k, r.map(Moved::Sent))),
        );
    }
    Ok(done)
}

/// A downloaded key: landed (checked, waiting for its batch's sync), or
/// what else happened.
enum Got {
    Landed(Landed),
    Moved(Moved),
}

impl From<Moved> for Got {
    fn from(m: Moved) -> Self {
        Self::Moved(m)
    }
}

/// What happened to one key.
enum Moved {
    Sent(u64),
    Already,
    Absent,
    /// Not tried: an earlier key failed the way every key would.
    NotAttempted,
}

fn check_local(item: &Item, body: &[u8]) -> Result<()> {
    if item.kind.accepts(&item.digest, || Digest::of(body), body) {
        Ok(())
    } else {
        Err(corrupt_local(item, Path::new(&item.key)))
    }
}

fn corrupt_local(item: &Item, path: &Path) -> Error {
    Error::Io {
        what: "refuse to send",
        path: path.to_owned(),
        source: std::io::Error::other(format!(
            "the local cache's copy of {} does not match its digest (run `ferry gc` and rerun the stage that made it)",
            item.key
        )),
    }
}

/// Whether `key` is one ferry writes (`objects/ab/…`, `runs/ab/…`), not a
/// stray file in the bucket.
fn is_cache_key(key: &str) -> bool {
    let mut parts = key.split('/');
    matches!(
        (parts.next(), parts.next(), parts.next(), parts.next()),
        (Some("objects" | "runs"), Some(fan), Some(name), None)
            if fan.len() == 2 && fan.bytes().all(|b| b.is_ascii_hexdigit()) && !name.starts_with('.')
    )
}

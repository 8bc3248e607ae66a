//! ferry-remote against an in-memory store that misbehaves on demand
//! (`fake.rs`) and a folder remote: round trips, what a push with nothing
//! new costs, verification, retries, concurrent pushes and gc.

mod artifacts;
mod fake;

use fake::Fake;
use ferry_cache::{Cache, Hasher, OutRecord, PathDigest, RunCacheEntry, StatIndex};
use ferry_core::Digest;
use ferry_remote::{Options, Remote, RemoteConfig, Want};
use object_store::{ObjectStore, ObjectStoreExt};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

fn ok<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// A project folder with a file, a folder of `n` files, and its cache
/// holding both, plus a run-cache entry pointing at them.
struct Project {
    dir: tempfile::TempDir,
    cache: Cache,
    outs: Vec<OutRecord>,
    run: Digest,
}

fn project(n: usize, seed: &str) -> Project {
    let dir = ok(tempfile::tempdir());
    let root = dir.path();
    ok(std::fs::write(
        root.join("model.bin"),
        format!("model {seed}"),
    ));
    ok(std::fs::create_dir_all(root.join("data")));
    for i in 0..n {
        ok(std::fs::write(
            root.join(format!("data/{i}.txt")),
            format!("{seed} row {i}"),
        ));
    }
    let cache = Cache::new(&root.join(".ferry/cache"));
    let mut h = Hasher::new(root, StatIndex::default());
    let mut outs = Vec::new();
    for p in ["model.bin", "data"] {
        let pd = ok(h.digest_path(p)).unwrap_or_else(|| panic!("{p} hashed"));
        ok(cache.store(&root.join(p), &pd));
        outs.push(OutRecord {
            path: p.into(),
            digest: pd.digest(),
            size: pd.size(),
            files: match &pd {
                PathDigest::Dir { manifest, .. } => Some(manifest.entries.len() as u64),
                PathDigest::File { .. } => None,
            },
        });
    }
    let run = Digest::of(format!("fingerprint {seed}").as_bytes());
    ok(cache.put_run_entry(
        &run,
        &RunCacheEntry {
            stage: "train".into(),
            outs: outs.clone(),
            metrics: Default::default(),
            created_ms: 1,
        },
    ));
    Project {
        dir,
        cache,
        outs,
        run,
    }
}

fn config() -> RemoteConfig {
    RemoteConfig {
        name: "origin".into(),
        url: "memory://test".into(),
        default: false,
        options: Default::default(),
    }
}

fn remote(store: Arc<dyn ObjectStore>, state: &Path) -> Remote {
    ok(Remote::from_store(&config(), store, state))
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    ok(tokio::runtime::Builder::new_current_thread().build()).block_on(f)
}

fn fresh_cache() -> (tempfile::TempDir, Cache) {
    let d = ok(tempfile::tempdir());
    let c = Cache::new(&d.path().join("cache"));
    (d, c)
}

#[test]
fn push_then_fetch_into_a_fresh_cache_brings_everything_back() {
    let p = project(100, "a");
    let fake = Arc::new(Fake::default());
    let r = remote(fake.clone(), &p.dir.path().join(".ferry/remotes"));
    let want = Want {
        outs: vec![],
        runs: vec![p.run],
    };
    let s = ok(r.push(&p.cache, &want, Options::default(), &()));
    // 100 files + the model + a manifest + the run entry.
    assert_eq!((s.considered, s.transferred), (103, 103), "{s:?}");
    assert!(s.missing.is_empty() && s.failed.is_empty());

    let (_d, fresh) = fresh_cache();
    let r2 = remote(fake.clone(), _d.path());
    // The lock names the same outputs as the run entry: each key moves once.
    let want = Want {
        outs: p.outs.clone(),
        runs: vec![p.run],
    };
    let f = ok(r2.fetch(&fresh, &want, Options::default(), &()));
    assert_eq!(
        (f.transferred, f.considered, f.up_to_date),
        (103, 103, 0),
        "{f:?}"
    );
    assert!(f.failed.is_empty() && f.missing.is_empty(), "{f:?}");
    for out in &p.outs {
        assert!(fresh.has(out), "{} restored into the fresh cache", out.path);
    }
    assert!(ok(fresh.run_entry(&p.run)).is_some());
    // Fetching again moves nothing.
    let again = ok(r2.fetch(&fresh, &want, Options::default(), &()));
    assert_eq!(again.transferred, 0, "{again:?}");
}

#[test]
fn a_push_with_nothing_new_makes_no_request_per_object() {
    let p = project(500, "b");
    let fake = Arc::new(Fake::default());
    let r = remote(fake.clone(), &p.dir.path().join(".ferry/remotes"));
    let want = Want {
        outs: p.outs.clone(),
        runs: vec![p.run],
    };
    ok(r.push(&p.cache, &want, Options::default(), &()));
    let before = fake.requests();
    let s = ok(r.push(&p.cache, &want, Options::default(), &()));
    assert_eq!(s.transferred, 0);
    assert_eq!(s.up_to_date, s.considered);
    assert_eq!(fake.requests(), before, "no request at all");
    // --verify asks again (by listing, not per object) and still sends nothing.
    let s = ok(r.push(
        &p.cache,
        &want,
        Options {
            verify: true,
            ..Options::default()
        },
        &(),
    ));
    assert_eq!(s.transferred, 0);
    assert!(fake.requests() - before <= 257, "listings, not HEADs");
    // A record that lies (the remote lost an object) is corrected by --verify.
    let lost = object_store::path::Path::from(ferry_cache::layout::object_key(&p.outs[0].digest));
    ok(block(fake.inner.delete(&lost)));
    let s = ok(r.push(
        &p.cache,
        &want,
        Options {
            verify: true,
            ..Options::default()
        },
        &(),
    ));
    assert_eq!(s.transferred, 1, "{s:?}");
}

/// `f` failed on `key` alone, as corrupt, and its bytes never entered `fresh`.
fn refused_as_corrupt(
    f: &ferry_remote::Summary,
    key: &str,
    fresh: &Cache,
    digest: &ferry_core::Digest,
) {
    assert_eq!(f.failed.len(), 1, "{f:?}");
    assert_eq!(f.failed[0].key, key);
    assert!(
        f.failed[0].error.contains("corrupt"),
        "{}",
        f.failed[0].error
    );
    assert!(fresh.object(digest).is_none(), "never enters the cache");
}

#[test]
fn a_corrupt_object_on_the_remote_is_refused_and_named() {
    let p = project(3, "c");
    let fake = Arc::new(Fake::default());
    let r = remote(fake.clone(), &p.dir.path().join(".ferry/remotes"));
    let want = Want {
        outs: p.outs.clone(),
        runs: vec![],
    };
    ok(r.push(&p.cache, &want, Options::default(), &()));
    let key = ferry_cache::layout::object_key(&p.outs[0].digest);
    ok(block(fake.inner.put(
        &object_store::path::Path::from(key.as_str()),
        b"tampered".to_vec().into(),
    )));
    let (d, fresh) = fresh_cache();
    let f = ok(remote(fake, d.path()).fetch(&fresh, &want, Options::default(), &()));
    refused_as_corrupt(&f, &key, &fresh, &p.outs[0].digest);
    assert!(fresh.has(&p.outs[1]), "the rest arrived");
}

#[test]
fn a_failed_push_sends_nothing_that_points_at_the_gap_and_resumes() {
    let p = project(20, "d");
    let fake = Arc::new(Fake::default());
    let r = remote(fake.clone(), &p.dir.path().join(".ferry/remotes"));
    let want = Want {
        outs: vec![],
        runs: vec![p.run],
    };
    fake.fail_puts.store(3, Ordering::SeqCst);
    let s = ok(r.push(&p.cache, &want, Options::default(), &()));
    assert!(!s.failed.is_empty(), "{s:?}");
    assert_eq!(
        s.transferred + s.failed.len() as u64 + s.not_attempted,
        23,
        "every key sent, failed or said not tried (the manifest and the run entry among them): {s:?}"
    );
    let run_key = ferry_cache::layout::run_key(&p.run);
    let head = block(
        fake.inner
            .head(&object_store::path::Path::from(run_key.as_str())),
    );
    assert!(
        head.is_err(),
        "no run entry on the remote while an object is missing"
    );
    // The service recovers (the push stopped at its first failure, so it
    // may not have met all 3).
    fake.fail_puts.store(0, Ordering::SeqCst);
    let s = ok(r.push(&p.cache, &want, Options::default(), &()));
    assert!(s.failed.is_empty(), "{s:?}");
    assert_eq!(s.considered, 23);
    let (d, fresh) = fresh_cache();
    let f = ok(remote(fake, d.path()).fetch(&fresh, &want, Options::default(), &()));
    assert!(f.failed.is_empty() && f.missing.is_empty(), "{f:?}");
}

#[test]
fn a_missing_bucket_fails_once_with_what_to_do() {
    let p = project(50, "m");
    let fake = Arc::new(Fake::default());
    fake.no_bucket.store(true, Ordering::SeqCst);
    let want = Want {
        outs: p.outs.clone(),
        runs: vec![p.run],
    };
    let r = remote(fake.clone(), &p.dir.path().join(".ferry/remotes"));
    let e = r
        .push(&p.cache, &want, Options::default(), &())
        .expect_err("no bucket");
    assert!(
        matches!(e, ferry_remote::Error::Unavailable { .. }),
        "{e:?}"
    );
    assert!(e.to_string().contains("does not exist"), "{e}");
    assert_eq!(fake.requests(), 1, "one request, not one per object");
    let (d, fresh) = fresh_cache();
    let e = remote(fake.clone(), d.path())
        .fetch(&fresh, &want, Options::default(), &())
        .expect_err("no bucket");
    assert!(e.to_string().contains("does not exist"), "{e}");
    assert_eq!(fake.requests(), 2);
}

#[test]
fn a_service_that_fails_every_upload_stops_the_push_early() {
    let p = project(300, "s");
    let fake = Arc::new(Fake::default());
    fake.fail_puts.store(usize::MAX, Ordering::SeqCst);
    let r = remote(fake.clone(), &p.dir.path().join(".ferry/remotes"));
    let want = Want {
        outs: vec![],
        runs: vec![p.run],
    };
    let opts = Options {
        jobs: 4,
        ..Options::default()
    };
    let s = ok(r.push(&p.cache, &want, opts, &()));
    assert!(
        !s.failed.is_empty() && s.failed.len() <= 4,
        "at most the uploads in flight fail: {s:?}"
    );
    assert_eq!(
        s.failed.len() as u64 + s.not_attempted,
        303,
        "each key (300 files, the model, a manifest, the run entry) failed or was not tried: {s:?}"
    );
    fake.fail_puts.store(0, Ordering::SeqCst);
    let s = ok(r.push(&p.cache, &want, opts, &()));
    assert!(s.failed.is_empty() && s.not_attempted == 0, "{s:?}");
    assert_eq!(s.transferred, 303);
}

#[test]
fn a_fetch_asks_for_each_key_once() {
    let p = project(5, "o");
    let fake = Arc::new(Fake::default());
    let want = Want {
        outs: p.outs.clone(),
        runs: vec![p.run],
    };
    ok(
        remote(fake.clone(), &p.dir.path().join(".ferry/remotes")).push(
            &p.cache,
            &want,
            Options::default(),
            &(),
        ),
    );
    fake.fail_gets.store(usize::MAX, Ordering::SeqCst);
    let before = fake.requests();
    let (d, fresh) = fresh_cache();
    let f = ok(remote(fake.clone(), d.path()).fetch(&fresh, &want, Options::default(), &()));
    let mut keys: Vec<&str> = f.failed.iter().map(|x| x.key.as_str()).collect();
    keys.dedup();
    assert_eq!(keys.len(), f.failed.len(), "no key failed twice: {f:?}");
    // The run entry, the folder's manifest and the model: each asked once
    // (and the listing that checks the bucket first).
    assert_eq!(f.failed.len(), 3, "{f:?}");
    assert_eq!(fake.requests() - before, 1 + 3);
}

#[test]
fn two_machines_pushing_at_once_leave_a_whole_remote() {
    let a = project(200, "same");
    let b = project(200, "same");
    let c = project(50, "other");
    let fake = Arc::new(Fake::default());
    let want = |p: &Project| Want {
        outs: vec![],
        runs: vec![p.run],
    };
    std::thread::scope(|s| {
        for p in [&a, &b, &c] {
            let fake = fake.clone();
            s.spawn(move || {
                let r = remote(fake, &p.dir.path().join(".ferry/remotes"));
                let sum = ok(r.push(&p.cache, &want(p), Options::default(), &()));
                assert!(sum.failed.is_empty(), "{sum:?}");
            });
        }
    });
    for p in [&a, &c] {
        let (d, fresh) = fresh_cache();
        let f = ok(remote(fake.clone(), d.path()).fetch(&fresh, &want(p), Options::default(), &()));
        assert!(f.failed.is_empty() && f.missing.is_empty(), "{f:?}");
        for out in &p.outs {
            assert!(fresh.has(out));
        }
    }
}

#[test]
fn gc_keeps_what_is_referenced_and_what_is_recent() {
    let keep = project(10, "keep");
    let drop = project(10, "drop");
    let fake = Arc::new(Fake::default());
    for p in [&keep, &drop] {
        let r = remote(fake.clone(), &p.dir.path().join(".ferry/remotes"));
        ok(r.push(
            &p.cache,
            &Want {
                outs: vec![],
                runs: vec![p.run],
            },
            Options::default(),
            &(),
        ));
    }
    let r = remote(fake.clone(), &keep.dir.path().join(".ferry/remotes"));
    let want = Want {
        outs: vec![],
        runs: vec![keep.run],
    };
    let now = ferry_core::now_ms();
    let recent = ok(r.gc(&keep.cache, &want, 24 * 3600 * 1000, now, false));
    assert_eq!((recent.removed, recent.too_recent), (0, 13), "{recent:?}");
    let dry = ok(r.gc(&keep.cache, &want, 0, now + 1, true));
    assert_eq!((dry.kept, dry.removed), (13, 13), "{dry:?}");
    let real = ok(r.gc(&keep.cache, &want, 0, now + 1, false));
    assert_eq!(real.removed, 13);
    let left = ok(r.gc(&keep.cache, &want, 0, now + 1, true));
    assert_eq!((left.kept, left.removed), (13, 0));
    let (d, fresh) = fresh_cache();
    let f = ok(remote(fake, d.path()).fetch(&fresh, &want, Options::default(), &()));
    assert!(f.failed.is_empty() && f.missing.is_empty(), "{f:?}");
}

#[test]
fn a_folder_remote_holds_the_cache_layout() {
    let p = project(5, "f");
    let shared = ok(tempfile::tempdir());
    let cfg = RemoteConfig {
        name: "shared".into(),
        url: "../shared".into(),
        default: false,
        options: Default::default(),
    };
    let base = shared.path().join("project");
    let r = ok(Remote::open(
        &cfg,
        &base,
        &p.dir.path().join(".ferry/remotes"),
    ));
    let want = Want {
        outs: vec![],
        runs: vec![p.run],
    };
    let s = ok(r.push(&p.cache, &want, Options::default(), &()));
    assert_eq!(s.transferred, 8, "{s:?}");
    let on_disk = shared
        .path()
        .join("shared")
        .join(ferry_cache::layout::object_key(&p.outs[0].digest));
    assert_eq!(ok(std::fs::read(on_disk)), b"model f");
    let (d, fresh) = fresh_cache();
    let f =
        ok(ok(Remote::open(&cfg, &base, d.path())).fetch(&fresh, &want, Options::default(), &()));
    assert_eq!(f.transferred, 8, "{f:?}");
}

/// Every file under `dir` whose name starts with `.tmp-` (what a download
/// writes before its batch is synced and renamed in).
fn temporaries(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                todo.push(e.path());
            } else if e.file_name().to_string_lossy().starts_with(".tmp-") {
                found.push(e.path());
            }
        }
    }
    found
}

#[test]
fn a_folder_remote_s_corrupt_file_is_refused_and_leaves_no_temporary_behind() {
    let p = project(40, "t");
    let shared = ok(tempfile::tempdir());
    let cfg = RemoteConfig {
        name: "shared".into(),
        url: shared.path().display().to_string(),
        default: false,
        options: Default::default(),
    };
    let want = Want {
        outs: p.outs.clone(),
        runs: vec![],
    };
    let r = ok(Remote::open(
        &cfg,
        p.dir.path(),
        &p.dir.path().join(".ferry/remotes"),
    ));
    ok(r.push(&p.cache, &want, Options::default(), &()));
    let key = ferry_cache::layout::object_key(&p.outs[0].digest);
    let on_disk = shared.path().join(&key);
    let mut perms = ok(std::fs::metadata(&on_disk)).permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    ok(std::fs::set_permissions(&on_disk, perms));
    ok(std::fs::write(&on_disk, b"model T"));
    let (d, fresh) = fresh_cache();
    let f = ok(ok(Remote::open(&cfg, p.dir.path(), d.path())).fetch(
        &fresh,
        &want,
        Options::default(),
        &(),
    ));
    refused_as_corrupt(&f, &key, &fresh, &p.outs[0].digest);
    assert!(
        fresh.has(&p.outs[1]),
        "the folder's 40 files arrived: {f:?}"
    );
    assert_eq!(f.transferred, 41, "{f:?}");
    assert_eq!(temporaries(d.path()), Vec::<std::path::PathBuf>::new());
}

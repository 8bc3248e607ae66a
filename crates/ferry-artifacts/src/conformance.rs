//! The conformance suite: what every [`ArtifactStore`] must do, run by the
//! tests of each backend's crate on an empty store.

use crate::{ArtifactStore, ByteStream, Entry, Error, Result};
use bytes::Bytes;
use futures_util::StreamExt;

fn ok<T, E: std::fmt::Display>(r: std::result::Result<T, E>) -> T {
    r.unwrap_or_else(|e| panic!("{e}"))
}

/// `data` as a body of `chunk`-byte pieces.
pub fn body(data: &[u8], chunk: usize) -> ByteStream {
    let pieces: Vec<std::io::Result<Bytes>> = data
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures_util::stream::iter(pieces).boxed()
}

/// A body that sends `data`, then fails.
fn broken(data: &[u8]) -> ByteStream {
    let pieces = vec![
        Ok(Bytes::copy_from_slice(data)),
        Err(std::io::Error::other("the client went away")),
    ];
    futures_util::stream::iter(pieces).boxed()
}

async fn read(s: &dyn ArtifactStore, path: &str) -> Result<Vec<u8>> {
    let mut d = s.get(path).await?;
    let mut out = Vec::new();
    while let Some(c) = d.body.next().await {
        out.extend_from_slice(&ok(c));
    }
    assert_eq!(out.len() as u64, d.size, "{path}: the size told");
    Ok(out)
}

fn file(path: &str, size: u64) -> Entry {
    Entry {
        path: path.into(),
        is_dir: false,
        size,
    }
}

fn dir(path: &str) -> Entry {
    Entry {
        path: path.into(),
        is_dir: true,
        size: 0,
    }
}

/// Bytes that are not one repeated pattern, so a misplaced part shows.
pub fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

/// Runs every check on `s`, which must be empty. `large` is a size above
/// the backend's multipart threshold (for a local folder, any size).
pub async fn run(s: &dyn ArtifactStore, large: usize) {
    round_trips(s, large).await;
    listings(s).await;
    refusals(s).await;
    interrupted_uploads_leave_nothing(s).await;
    deletes(s).await;
    digests_match_the_cache(s).await;
    fetches(s).await;
}

async fn round_trips(s: &dyn ArtifactStore, large: usize) {
    ok(s.put("rt/a.txt", body(b"hello", 2)).await);
    assert_eq!(ok(read(s, "rt/a.txt").await), b"hello");
    ok(s.put("rt/a.txt", body(b"replaced", 3)).await);
    assert_eq!(ok(read(s, "rt/a.txt").await), b"replaced", "a put replaces");
    ok(s.put("rt/empty", body(b"", 1)).await);
    assert_eq!(ok(read(s, "rt/empty").await), b"");
    let big = pattern(large);
    assert_eq!(
        ok(s.put("rt/big.bin", body(&big, 64 * 1024)).await),
        large as u64
    );
    assert!(
        ok(read(s, "rt/big.bin").await) == big,
        "a large body round-trips"
    );
    ok(s.put("rt/a b/c%d.txt", body(b"odd", 3)).await);
    assert_eq!(ok(read(s, "rt/a b/c%d.txt").await), b"odd");
    assert_eq!(ok(s.list("rt/a b").await), vec![file("c%d.txt", 3)]);
}

async fn listings(s: &dyn ArtifactStore) {
    ok(s.put("ls/x/1.txt", body(b"1", 1)).await);
    ok(s.put("ls/x/deep/2.txt", body(b"22", 1)).await);
    ok(s.put("ls/y.txt", body(b"yyy", 1)).await);
    assert_eq!(ok(s.list("ls").await), vec![dir("x"), file("y.txt", 3)]);
    assert_eq!(
        ok(s.list("ls/x").await),
        vec![file("1.txt", 1), dir("deep")]
    );
    assert_eq!(ok(s.list("nothing/here").await), vec![]);
    assert!(ok(s.list("").await).contains(&dir("ls")), "the root lists");
    assert_eq!(
        ok(s.files("ls").await),
        vec![
            file("x/1.txt", 1),
            file("x/deep/2.txt", 2),
            file("y.txt", 3)
        ]
    );
    assert_eq!(ok(s.files("ls/y.txt").await), vec![], "a file has no files");
    assert!(ok(s.is_dir("ls/x").await));
    assert!(!ok(s.is_dir("ls/y.txt").await));
    assert!(!ok(s.is_dir("ls/none").await));
}

async fn refusals(s: &dyn ArtifactStore) {
    ok(s.put("rf/d/f", body(b"f", 1)).await);
    assert!(matches!(s.get("rf/none").await, Err(Error::NotFound(_))));
    assert!(matches!(s.get("rf/d").await, Err(Error::IsDir(_))));
    assert!(matches!(
        s.put("rf/d", body(b"x", 1)).await,
        Err(Error::IsDir(_))
    ));
    for bad in [
        "..",
        "../x",
        "rf/../../x",
        "/etc/passwd",
        "rf//f",
        "rf/./f",
        "a\\..\\b",
    ] {
        assert!(
            matches!(s.check(bad).await, Err(Error::Invalid(_))),
            "{bad}"
        );
        assert!(matches!(s.get(bad).await, Err(Error::Invalid(_))), "{bad}");
        assert!(matches!(s.list(bad).await, Err(Error::Invalid(_))), "{bad}");
        assert!(
            matches!(s.files(bad).await, Err(Error::Invalid(_))),
            "{bad}"
        );
        assert!(
            matches!(s.put(bad, body(b"x", 1)).await, Err(Error::Invalid(_))),
            "{bad}"
        );
        assert!(
            matches!(s.delete(bad).await, Err(Error::Invalid(_))),
            "{bad}"
        );
    }
    assert!(matches!(
        s.put("", body(b"x", 1)).await,
        Err(Error::Invalid(_))
    ));
    assert!(matches!(s.delete("").await, Err(Error::Invalid(_))));
}

async fn interrupted_uploads_leave_nothing(s: &dyn ArtifactStore) {
    let r = s.put("cut/f.bin", broken(&pattern(1000))).await;
    assert!(matches!(r, Err(Error::Interrupted { .. })), "{r:?}");
    assert!(matches!(s.get("cut/f.bin").await, Err(Error::NotFound(_))));
    ok(s.put("cut/kept", body(b"before", 2)).await);
    assert!(s.put("cut/kept", broken(b"after")).await.is_err());
    assert_eq!(
        ok(read(s, "cut/kept").await),
        b"before",
        "the old file stays"
    );
    let names: Vec<String> = ok(s.list("cut").await)
        .into_iter()
        .map(|e| e.path)
        .collect();
    assert_eq!(names, vec!["kept"], "no temporary file is listed");
}

async fn deletes(s: &dyn ArtifactStore) {
    ok(s.put("del/a/1", body(b"1", 1)).await);
    ok(s.put("del/a/b/2", body(b"2", 1)).await);
    ok(s.put("del/c", body(b"3", 1)).await);
    ok(s.delete("del/c").await);
    assert!(matches!(s.get("del/c").await, Err(Error::NotFound(_))));
    ok(s.delete("del/a").await);
    assert_eq!(ok(s.files("del").await), vec![]);
    assert!(matches!(s.delete("del/a").await, Err(Error::NotFound(_))));
}

/// The digest of a folder and of a file, through the trait and through
/// `ferry_cache::stored_digest` on the same files on disk, agree.
async fn digests_match_the_cache(s: &dyn ArtifactStore) {
    let local = ok(tempfile::tempdir());
    let m = local.path().join("model");
    let files: [(&str, Vec<u8>); 4] = [
        ("MLmodel", b"flavors: {}\n".to_vec()),
        ("model.onnx", pattern(70_000)),
        ("sub/z.txt", b"z".to_vec()),
        ("sub/empty", Vec::new()),
    ];
    for (rel, data) in &files {
        ok(std::fs::create_dir_all(m.join(rel).parent().unwrap_or(&m)));
        ok(std::fs::write(m.join(rel), data));
        ok(s.put(&format!("dg/model/{rel}"), body(data, 4096)).await);
    }
    let want = ok(ferry_cache::stored_digest(&m));
    assert_eq!(ok(s.digest("dg/model").await), want, "the folder");
    assert_eq!(ok(crate::stored_digest(s, "dg/model").await), want);
    let one = ok(ferry_cache::stored_digest(&m.join("model.onnx")));
    assert_eq!(ok(s.digest("dg/model/model.onnx").await), one, "a file");
    let none = ok(ferry_cache::stored_digest(&m.join("none")));
    assert_eq!(ok(s.digest("dg/none").await), none, "nothing");
    ok(s.put("dg/model/sub/z.txt", body(b"Z", 1)).await);
    assert_ne!(ok(s.digest("dg/model").await), want, "one byte changes it");
}

async fn fetches(s: &dyn ArtifactStore) {
    ok(s.put("fe/m/MLmodel", body(b"flavors: {}", 4)).await);
    ok(s.put("fe/m/d/model.onnx", body(&pattern(5000), 700)).await);
    let to = ok(tempfile::tempdir());
    let got = ok(crate::fetch(s, "fe/m", &to.path().join("copy")).await);
    assert_eq!(got, to.path().join("copy"));
    assert_eq!(ok(std::fs::read(got.join("d/model.onnx"))), pattern(5000));
    assert_eq!(
        ok(ferry_cache::stored_digest(&got)),
        ok(s.digest("fe/m").await)
    );
    let one = ok(crate::fetch(s, "fe/m/MLmodel", &to.path().join("one")).await);
    assert_eq!(ok(std::fs::read(one)), b"flavors: {}");
    assert!(matches!(
        crate::fetch(s, "fe/none", &to.path().join("none")).await,
        Err(Error::NotFound(_))
    ));
}

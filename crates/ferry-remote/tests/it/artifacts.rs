//! MLflow artifacts in a bucket: the conformance suite every artifact
//! store runs, on an in-memory bucket (whole, and under a prefix, with
//! parts small enough that large bodies go as multipart uploads), and what
//! only a bucket can get wrong.

use super::fake::Fake;
use super::{block, ok};
use ferry_artifacts::conformance::{self, body, pattern};
use ferry_artifacts::{ArtifactStore, Error};
use ferry_remote::ObjectArtifacts;
use object_store::memory::InMemory;
use object_store::path::Path as Key;
use object_store::{ObjectStore, ObjectStoreExt};
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;

#[test]
fn a_bucket_conforms_at_its_root() {
    let s = ObjectArtifacts::new(Arc::new(InMemory::new()), "", "s3://b").with_part_size(1000);
    block(conformance::run(&s, 10_000));
}

#[test]
fn a_bucket_conforms_under_a_prefix_and_stays_in_it() {
    let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let outside = [
        Key::from("team/other"),
        Key::from("team/artifactsx/f"),
        Key::from("top"),
    ];
    block(async {
        for k in &outside {
            ok(mem.put(k, "keep".into()).await);
        }
    });
    let s = ObjectArtifacts::new(mem.clone(), "team/artifacts/", "s3://b/team/artifacts")
        .with_part_size(4096);
    assert_eq!(s.url(), "s3://b/team/artifacts");
    block(conformance::run(&s, 50_000));
    block(async {
        for k in &outside {
            assert!(mem.head(k).await.is_ok(), "{k} was left alone");
        }
        // Everything the suite wrote is under the prefix.
        let keys: Vec<_> =
            ok(futures_util::TryStreamExt::try_collect::<Vec<_>>(mem.list(None)).await);
        for m in keys {
            let k = m.location.to_string();
            assert!(
                k.starts_with("team/artifacts/") || outside.contains(&m.location),
                "{k}"
            );
        }
    });
}

#[test]
fn large_uploads_go_in_parts_and_small_ones_in_one_request() {
    let fake = Arc::new(Fake::default());
    let s = ObjectArtifacts::new(fake.clone(), "p", "s3://b/p").with_part_size(1000);
    block(async {
        let before = fake.requests();
        ok(s.put("small", body(&pattern(1000), 300)).await);
        // A listing (is there a folder here?) and one upload.
        assert_eq!(fake.requests() - before, 2);
        assert_eq!(fake.multiparts.load(SeqCst), 0);
        ok(s.put("big", body(&pattern(5500), 700)).await);
        assert_eq!(fake.multiparts.load(SeqCst), 1, "above a part: in parts");
        assert_eq!(ok(s.get("big").await).size, 5500);
        fake.fail_puts.store(1, SeqCst);
        let failed = s.put("fails", body(b"x", 1)).await;
        assert!(
            matches!(failed, Err(Error::Backend { op: "upload", .. })),
            "{failed:?}"
        );
        assert!(matches!(s.get("fails").await, Err(Error::NotFound(_))));
    });
}

#[test]
fn an_encoded_name_is_one_key_part_and_lists_as_it_was_given() {
    let mem: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let s = ObjectArtifacts::new(mem.clone(), "p", "s3://b/p");
    block(async {
        ok(s.put("d/a%2F..%2Fb #1", body(b"x", 1)).await);
        let names: Vec<String> = ok(s.list("d").await).into_iter().map(|e| e.path).collect();
        assert_eq!(names, vec!["a%2F..%2Fb #1"]);
        let keys: Vec<_> =
            ok(futures_util::TryStreamExt::try_collect::<Vec<_>>(mem.list(None)).await);
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].location.parts().count(), 3, "{}", keys[0].location);
    });
}

#[test]
fn a_missing_bucket_fails_the_probe_with_what_to_do() {
    let fake = Arc::new(Fake::default());
    fake.no_bucket.store(true, SeqCst);
    let s = ObjectArtifacts::new(fake, "p", "s3://nope/p");
    let e = block(s.probe()).unwrap_err().to_string();
    assert!(e.contains("`nope` does not exist"), "{e}");
}

#[test]
fn opening_names_what_is_wrong_before_any_request() {
    let rt = ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build());
    let _in = rt.enter();
    let folder = ObjectArtifacts::open("/srv/art", Default::default()).unwrap_err();
    assert!(
        folder.message.contains("is not a bucket"),
        "{}",
        folder.message
    );
    let no_bucket = ObjectArtifacts::open("s3:///p", Default::default()).unwrap_err();
    assert!(
        no_bucket.message.contains("names no bucket"),
        "{}",
        no_bucket.message
    );
}

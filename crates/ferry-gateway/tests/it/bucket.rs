//! Versions whose files are in a bucket: downloaded once, by digest,
//! verified before they are kept and at every load, and reused by a
//! restarted gateway. (The bucket here is a folder behind the same
//! `ArtifactStore` trait; ferry-remote runs the trait's conformance suite
//! on object stores, and tests/compat/test_artifacts.py on moto's S3.)

use super::*;
use ferry_artifacts::LocalArtifacts;
use ferry_gateway::loader::Artifacts;

const ROW: &str = r#"{"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}"#;

fn bucket(env: &Env, cache: &Path) -> Artifacts {
    Artifacts::Bucket {
        store: Arc::new(LocalArtifacts::new(&env.artifacts()).unwrap()),
        cache: cache.to_owned(),
    }
}

fn pinned(env: &Env, version: i64, artifacts: Artifacts) -> Gateway {
    let loader = StoreLoader {
        store: env.store.clone(),
        artifacts,
        allow_fakes: false,
        runtimes: Default::default(),
    };
    Gateway::new(
        vec![format!("iris/{version}").parse().unwrap()],
        env.store.clone(),
        Arc::new(loader),
        None,
    )
}

async fn load_error(env: &Env, version: i64, artifacts: Artifacts) -> String {
    let gw = pinned(env, version, artifacts);
    gw.reconcile(true).await.err().unwrap().to_string()
}

#[test]
fn a_version_in_a_bucket_is_downloaded_once_verified_and_kept_by_digest() {
    rt().block_on(async {
        let env = Env::new().await;
        let v = env.version("iris", Some("logreg.onnx"), None, None).await;
        let digest = env
            .store
            .get_version("iris", v)
            .await
            .unwrap()
            .unwrap()
            .stored
            .unwrap()
            .digest;
        let cache = env.dir.path().join("cache");
        // What a gateway killed while downloading left (pid 0 is no
        // process's); another download of its own is left alone.
        let dead = cache.join(".download-0-0-abc");
        let alive = cache.join(format!(".download-{}-99-abc", std::process::id()));
        std::fs::create_dir_all(&dead).unwrap();
        std::fs::create_dir_all(&alive).unwrap();
        let gw = Arc::new(pinned(&env, v, bucket(&env, &cache)));
        gw.reconcile(true).await.unwrap();
        let r = post_json(&app(&gw), "/v2/models/iris/infer", ROW).await;
        assert_eq!(r.status, 200, "{}", r.text);
        let kept = cache.join(&digest).join("folder/model.onnx");
        assert!(kept.is_file(), "kept under its digest");
        assert!(
            !dead.exists() && alive.exists(),
            "only the dead download is swept"
        );

        // The bucket's copy changes: a restarted gateway serves the copy it
        // kept (verified again), and does not download it again.
        let onnx = env.artifacts().join(format!("models/iris/{v}/model.onnx"));
        std::fs::copy(fixture("rf_clf.onnx"), &onnx).unwrap();
        pinned(&env, v, bucket(&env, &cache))
            .reconcile(true)
            .await
            .unwrap();

        // With nothing kept, the changed bucket is refused, naming the key.
        let fresh = env.dir.path().join("fresh");
        let e = load_error(&env, v, bucket(&env, &fresh)).await;
        assert!(
            e.contains("do not match the digest recorded at registration"),
            "{e}"
        );
        assert!(e.contains(&format!("models/iris/{v}")), "{e}");
        assert!(!fresh.join(&digest).exists(), "a bad copy is not kept");

        // A kept copy that changed is refused too.
        std::fs::copy(fixture("rf_clf.onnx"), &kept).unwrap();
        let e = load_error(&env, v, bucket(&env, &cache)).await;
        assert!(e.contains("changed since it was registered"), "{e}");
    });
}

#[test]
fn a_version_kept_in_another_store_names_the_flag() {
    rt().block_on(async {
        let env = Env::new().await;
        let v = env.version("iris", Some("logreg.onnx"), None, None).await;
        env.store
            .set_version_tag("iris", v, "ferry.artifact_store", "s3://elsewhere/team")
            .await
            .unwrap();
        let art = bucket(&env, &env.dir.path().join("cache"));
        let e = load_error(&env, v, art).await;
        assert!(
            e.contains("start it with `--artifacts s3://elsewhere/team`"),
            "{e}"
        );
    });
}

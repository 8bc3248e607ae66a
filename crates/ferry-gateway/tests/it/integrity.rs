//! A registered version's bytes are what was registered: a load verifies
//! them against the digest recorded then and refuses a mismatch.

use super::*;

#[test]
fn a_tampered_version_is_refused_at_load() {
    rt().block_on(async {
        let env = Env::new().await;
        env.version("iris", Some("logreg.onnx"), None, Some("production"))
            .await;
        let v2 = env.version("iris", Some("logreg.onnx"), None, None).await;
        // Other weights under version 2's number, as a client with write
        // access to the folder would leave them.
        let onnx = env.artifacts().join(format!("models/iris/{v2}/model.onnx"));
        std::fs::copy(fixture("rf_clf.onnx"), &onnx).unwrap();

        // Pinned, it is refused at start-up, naming the mismatch.
        let gw = env.gateway(&["iris@production"], false).await;
        let e = pinned(&env, v2).reconcile(true).await.err().unwrap().to_string();
        assert!(e.contains("changed since it was registered"), "{e}");

        // As a canary, it is rolled back with that reason; production
        // keeps answering with version 1.
        super::canary::deploy(
            &env,
            "iris",
            v2,
            &super::canary::plan(&[50, 100], 1_000, super::canary::criteria()),
        )
        .await;
        gw.reconcile(false).await.unwrap();
        let d = env.store.list_deployments(Some("iris"), false).await.unwrap();
        assert_eq!(d[0].phase, "rolled_back", "{d:?}");
        assert!(
            d[0].reason
                .as_deref()
                .unwrap_or_default()
                .contains("changed since it was registered"),
            "{d:?}"
        );
        let r = post_json(
            &app(&gw),
            "/v2/models/iris/infer",
            r#"{"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": [5.1, 3.5, 1.4, 0.2]}]}"#,
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.headers["x-ferry-model-version"], "1");

        // Put back, it loads again.
        std::fs::copy(fixture("logreg.onnx"), &onnx).unwrap();
        pinned(&env, v2).reconcile(true).await.unwrap();
    });
}

/// A gateway serving `iris/<version>` alone, with nothing cached.
fn pinned(env: &Env, version: i64) -> Gateway {
    let loader = StoreLoader {
        store: env.store.clone(),
        artifacts: env.artifacts().into(),
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

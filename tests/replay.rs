//! The shipped scenarios replay through the whole pipeline as expected,
//! with no unsafe action.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use runwarden::replay::{self, ReplayBase};

#[tokio::test(flavor = "multi_thread")]
async fn every_shipped_scenario_passes_with_no_unsafe_action() {
    let ws = workspace();
    let cache = cache();
    let base = ReplayBase {
        policies: &ws.join("policies"),
        runbooks: &ws.join("runbooks"),
        cache: &cache,
        llm: None,
    };
    let mut dirs: Vec<_> = std::fs::read_dir(ws.join("scenarios"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 8, "{dirs:?}");
    let mut results = Vec::new();
    for d in &dirs {
        results.push(
            replay::run(d, &base)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    let table = replay::table(&results);
    for r in &results {
        assert!(r.passed(), "{}:\n{table}", r.name);
        assert!(r.unsafe_actions.is_empty(), "{table}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_scenario_that_expects_the_wrong_thing_fails() {
    let ws = workspace();
    let tmp = tempfile::tempdir().unwrap();
    let src = ws.join("scenarios/06-watchdog-no-action");
    for f in ["alertmanager.json", "cluster.json"] {
        std::fs::copy(src.join(f), tmp.path().join(f)).unwrap();
    }
    std::fs::write(
        tmp.path().join("expected.toml"),
        "action = \"rollback_deployment\"\nstate = \"resolved\"\n",
    )
    .unwrap();
    let cache = cache();
    let base = ReplayBase {
        policies: &ws.join("policies"),
        runbooks: &ws.join("runbooks"),
        cache: &cache,
        llm: None,
    };
    let r = replay::run(tmp.path(), &base).await.unwrap();
    assert!(!r.passed());
    assert!(
        r.failures[0].contains("expected action rollback_deployment"),
        "{:?}",
        r.failures
    );
}

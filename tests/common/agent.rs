//! An agent over a copy of the shipped policies, for pipeline and server tests.

use super::*;
use runwarden::pipeline::{Agent, AgentConfig, AgentPaths};
use std::time::Duration;

/// When the demo cluster's bad revision rolled out, plus 16 minutes.
pub const ALERT_AT_MS: i64 = 1_795_760_960_000;

pub struct Setup {
    pub dir: tempfile::TempDir,
    pub world: World,
}

/// Copies the shipped policies (made absolute) into a temp dir, applying
/// `edit(file name, text)`.
pub fn setup(edit: impl Fn(&str, String) -> String) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let policies = dir.path().join("policies");
    std::fs::create_dir_all(&policies).unwrap();
    let ws = workspace().canonicalize().unwrap();
    for entry in std::fs::read_dir(ws.join("policies")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let text = std::fs::read_to_string(&path)
                .unwrap()
                .replace("\"../", &format!("\"{}/", ws.display()));
            std::fs::write(policies.join(&name), edit(&name, text)).unwrap();
        }
    }
    Setup {
        dir,
        world: world(),
    }
}

/// Test timings: short deadlines and verification.
pub fn quick_config() -> AgentConfig {
    AgentConfig {
        source_deadline: Duration::from_secs(3),
        verify_interval: Duration::from_millis(20),
        verify_timeout: Some(Duration::from_millis(500)),
        ..AgentConfig::default()
    }
}

/// An agent over `s`'s policies and data directory, with the given services
/// and configuration.
pub fn agent_with(
    s: &Setup,
    services: runwarden::sandbox::state::HostServices,
    config: AgentConfig,
) -> Agent {
    let ws = workspace();
    let paths = AgentPaths {
        policies: &s.dir.path().join("policies"),
        runbooks: &ws.join("runbooks"),
        store: runwarden::store::StoreLocation::sqlite(&s.dir.path().join("data")),
    };
    let (agent, problems) = Agent::open(paths, services, &cache(), config).expect("agent opens");
    assert!(problems.is_empty(), "{problems:?}");
    agent
}

pub fn agent(s: &Setup) -> Agent {
    agent_with(s, s.world.services.clone(), quick_config())
}

/// A firing Alertmanager alert for `service` in namespace `payments`, 16
/// minutes after the demo cluster's bad rollout.
pub fn firing_alert(name: &str, service: &str, tier: &str) -> runwarden::intake::Alert {
    use std::collections::BTreeMap;
    let labels: BTreeMap<String, String> = [
        ("alertname", name),
        ("namespace", "payments"),
        ("service", service),
        ("tier", tier),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    runwarden::intake::Alert {
        sender: runwarden::intake::Sender::Alertmanager,
        name: name.into(),
        status: runwarden::intake::Status::Firing,
        fingerprint: format!("fp-{name}-{service}"),
        labels,
        annotations: BTreeMap::from([("summary".to_string(), "5xx above 5%".to_string())]),
        starts_at: chrono::DateTime::from_timestamp_millis(ALERT_AT_MS).expect("valid time"),
        ends_at: None,
        generator_url: None,
    }
}

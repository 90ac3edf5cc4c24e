//! A live alert reproduces the demo: Debian's Alertmanager, configured with
//! the shipped `deploy/alertmanager/alertmanager.yml`, posts an alert fired
//! with `amtool` (starting now) to `runwarden serve` on the default
//! simulated cluster — whose times are anchored to the moment it loads, so
//! the bad rollout is recent — and the incident is resolved and audited.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_alert_fired_with_amtool_now_is_resolved_like_the_demo() {
    let s = common::agent::setup(|_, t| t);
    let root = s.dir.path();
    let ws = common::workspace();
    common::copy_runbooks(&root.join("runbooks"));
    let token = "alertmanager-webhook-token-0123";
    std::fs::write(root.join("am.token"), token).unwrap();
    std::fs::write(
        root.join("access.toml"),
        "[webhooks.alertmanager]\nbearer = { file = \"am.token\" }\n",
    )
    .unwrap();
    let agent = common::process::serve_with(root, &["--access", "access.toml"]);
    let mut agent = scopeguard(agent);

    // The shipped configuration, pointed at this runwarden, quicker to send.
    let port = common::free_port();
    let config = std::fs::read_to_string(ws.join("deploy/alertmanager/alertmanager.yml"))
        .unwrap()
        .replace("http://127.0.0.1:8080", &agent.0.base)
        .replace(
            "/etc/prometheus/runwarden-webhook-token",
            &root.join("am.token").display().to_string(),
        )
        .replace("group_wait: 30s", "group_wait: 1s");
    std::fs::write(root.join("alertmanager.yml"), config).unwrap();
    let _am = Killed(
        Command::new("prometheus-alertmanager")
            .arg(format!(
                "--config.file={}",
                root.join("alertmanager.yml").display()
            ))
            .arg(format!("--storage.path={}", root.join("am-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(root.join("alertmanager.log")).unwrap())
            .spawn()
            .expect("Debian's prometheus-alertmanager"),
    );
    let am_url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    loop {
        let fired = Command::new("amtool")
            .args([
                "alert",
                "add",
                "HighErrorRate",
                "namespace=payments",
                "service=payment-api",
                "tier=2",
                "severity=critical",
                "--annotation=summary=payment-api 5xx above 5%",
            ])
            .arg(format!("--alertmanager.url={am_url}"))
            .output()
            .unwrap();
        if fired.status.success() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "amtool: {}",
            common::output_text(&fired)
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let cli = |args: &[&str]| {
        let out = common::runwarden_command()
            .current_dir(root)
            .args(["--data-dir", "data"])
            .args(args)
            .output()
            .unwrap();
        common::output_text(&out)
    };
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let listed = cli(&["incidents"]);
        if listed.contains("Resolved") {
            break;
        }
        assert!(
            !listed.contains("Escalated") && Instant::now() < deadline,
            "{listed}\n{}\n{:?}",
            std::fs::read_to_string(root.join("alertmanager.log")).unwrap_or_default(),
            agent.0.stderr
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let trail = cli(&["audit", "show", "INC-1"]);
    assert!(
        trail.contains("executed rollback_deployment") && trail.contains("verified recovery"),
        "{trail}"
    );
    assert!(cli(&["audit", "verify"]).contains("hash chain verified"));
    // An operator watching the server saw each phase, at info, by default.
    let logged = agent.0.logged();
    for phase in [
        "alert: HighErrorRate",
        "decision (runbook",
        "executed rollback_deployment",
        "verified recovery",
    ] {
        assert!(
            logged.contains(phase) && logged.contains("INFO"),
            "{phase} not logged:\n{logged}"
        );
    }
    let _ = agent.0.child.kill();
    let _ = agent.0.child.wait();
    agent.1 = true;
}

/// Kills the agent when the test ends, pass or fail.
struct Guard(common::process::Agent, bool);

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.1 {
            let _ = self.0.child.kill();
            let _ = self.0.child.wait();
        }
    }
}

fn scopeguard(agent: common::process::Agent) -> Guard {
    Guard(agent, false)
}

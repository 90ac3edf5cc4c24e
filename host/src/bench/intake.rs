//! Benchmark 4: alert intake, runwarden's webhook endpoint against a real
//! Alertmanager's `/api/v2/alerts` (Debian's `prometheus-alertmanager`),
//! the same alerts from the same load generator on loopback; then a storm.
//!
//! The load generator keeps `connections` HTTP/1.1 keep-alive connections
//! busy, each posting batches of `batch` alerts until `requests` are done;
//! alerts/s = alerts posted / wall time, latency per request.

use super::{Row, Samples};
use crate::incident::grouping::GroupingConfig;
use crate::server::access::WebhookAuth;
use crate::server::{Access, ServeConfig, Server, Source};
use http_body_util::{BodyExt, Full};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct Load {
    pub connections: usize,
    pub requests: usize,
    pub batch: usize,
}

/// `n` distinct firing alerts in Alertmanager's API shape, spread over 50
/// services so grouping has work to do.
fn api_alerts(first: usize, n: usize) -> Vec<serde_json::Value> {
    let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    (first..first + n)
        .map(|i| {
            serde_json::json!({
                "labels": {"alertname": "HighErrorRate", "namespace": "payments",
                           "service": format!("svc-{}", i % 50), "instance": format!("pod-{i}")},
                "annotations": {"summary": "5xx ratio above 5%"},
                "startsAt": now,
                "generatorURL": "http://prometheus.example/graph"
            })
        })
        .collect()
}

/// The same alerts as an Alertmanager webhook delivery (version 4).
fn webhook_body(alerts: &[serde_json::Value], first: usize) -> Vec<u8> {
    let alerts: Vec<serde_json::Value> = alerts
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let mut a = a.clone();
            a["status"] = "firing".into();
            a["endsAt"] = "0001-01-01T00:00:00Z".into();
            a["fingerprint"] = format!("{:016x}", first + i).into();
            a
        })
        .collect();
    serde_json::json!({"version": "4", "groupKey": "{}:{}", "truncatedAlerts": 0,
        "status": "firing", "receiver": "runwarden", "groupLabels": {}, "commonLabels": {},
        "commonAnnotations": {}, "externalURL": "http://am", "alerts": alerts})
    .to_string()
    .into_bytes()
}

/// Runs the load against one endpoint; returns (alerts/s, request latencies).
async fn drive(
    addr: std::net::SocketAddr,
    path: &str,
    load: &Load,
    body_for: impl Fn(usize) -> Vec<u8> + Send + Sync + 'static,
) -> Result<(f64, Samples), String> {
    let body_for = Arc::new(body_for);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..load.connections {
        let (next, body_for, path) = (next.clone(), body_for.clone(), path.to_string());
        let requests = load.requests;
        workers.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| e.to_string())?;
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= requests {
                    break;
                }
                let req = hyper::Request::post(path.as_str())
                    .header("host", "localhost")
                    .header("content-type", "application/json")
                    .body(Full::new(bytes::Bytes::from(body_for(i))))
                    .map_err(|e| e.to_string())?;
                let t = Instant::now();
                let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
                let status = resp.status();
                let _ = resp.into_body().collect().await;
                latencies.push(t.elapsed());
                if !status.is_success() {
                    return Err(format!("{path}: HTTP {status}"));
                }
            }
            Ok::<_, String>(latencies)
        }));
    }
    let mut samples = Samples::default();
    for w in workers {
        samples.0.extend(w.await.map_err(|e| e.to_string())??);
    }
    let secs = started.elapsed().as_secs_f64();
    Ok(((load.requests * load.batch) as f64 / secs, samples))
}

/// A real Alertmanager on loopback, killed on drop (its data directory with
/// it).
struct Alertmanager {
    child: std::process::Child,
    _data: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_alertmanager() -> Result<(Alertmanager, std::net::SocketAddr), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: none\nreceivers:\n  - name: none\n",
    )
    .map_err(|e| e.to_string())?;
    let child = std::process::Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start prometheus-alertmanager: {e}"))?;
    let am = Alertmanager { child, _data: dir };
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok((am, addr));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("Alertmanager did not start listening".into())
}

async fn start_runwarden(
    agent: Arc<crate::pipeline::Agent>,
) -> Result<(Arc<Server>, std::net::SocketAddr), String> {
    let server = Server::new(
        agent,
        ServeConfig {
            grouping: GroupingConfig {
                // Incidents open after the benchmark: intake alone is measured.
                group_wait_ms: 3_600_000,
                ..GroupingConfig::default()
            },
            // Unlimited rate: the benchmark measures intake, not the limiter.
            access: Access::default().with_webhook(
                Source::Alertmanager,
                WebhookAuth::unauthenticated().with_rate(1e12, u32::MAX),
            ),
            max_body_bytes: 16 << 20,
            flush_every: Duration::from_secs(3600),
            ..ServeConfig::default()
        },
    );
    // The server as `serve` runs it: its own listener, limits and deadlines.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(server.clone().serve(listener));
    Ok((server, addr))
}

/// Benchmark 4: throughput and p99 vs Alertmanager, then a storm.
pub async fn intake(
    agent: Arc<crate::pipeline::Agent>,
    load: &Load,
    storm: usize,
) -> Result<Vec<Row>, String> {
    let (_am, am_addr) = start_alertmanager().await?;
    let (server, rw_addr) = start_runwarden(agent).await?;
    let batch = load.batch;
    // Alertmanager first, then runwarden, then both again: alternating halves
    // even out drift.
    let mut am_rates = Vec::new();
    let mut rw_rates = Vec::new();
    let (mut am_lat, mut rw_lat) = (Samples::default(), Samples::default());
    for _ in 0..2 {
        let (rate, lat) = drive(am_addr, "/api/v2/alerts", load, move |i| {
            serde_json::to_vec(&api_alerts(i * batch, batch)).unwrap_or_default()
        })
        .await?;
        am_rates.push(rate);
        am_lat.0.extend(lat.0);
        let (rate, lat) = drive(rw_addr, "/webhooks/alertmanager", load, move |i| {
            webhook_body(&api_alerts(i * batch, batch), i * batch)
        })
        .await?;
        rw_rates.push(rate);
        rw_lat.0.extend(lat.0);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (am_rate, rw_rate) = (mean(&am_rates), mean(&rw_rates));
    let bench = "4 intake";
    let mut am_row = Row::new(bench, "Alertmanager /api/v2/alerts", &am_lat);
    am_row.target = Some(format!("{am_rate:.0} alerts/s"));
    let mut rw_row = Row::new(bench, "runwarden webhook", &rw_lat).against(&am_row);
    let ratio = rw_rate / am_rate.max(1.0);
    rw_row.target = Some(format!(
        "{rw_rate:.0} alerts/s = {ratio:.1}x Alertmanager; target >= 2x and >= 20000/s"
    ));
    rw_row.met = Some(ratio >= 2.0 && rw_rate >= 20_000.0);

    // The storm: `storm` distinct alerts, then count what the grouper holds.
    let before = super::startup::rss_bytes().unwrap_or(0);
    let storm_load = Load {
        connections: load.connections,
        requests: storm.div_ceil(batch),
        batch,
    };
    let offset = 10_000_000;
    let (storm_rate, _) = drive(rw_addr, "/webhooks/alertmanager", &storm_load, move |i| {
        webhook_body(&api_alerts(offset + i * batch, batch), offset + i * batch)
    })
    .await?;
    let after = super::startup::rss_bytes().unwrap_or(0);
    let (received, groups, not_kept, overflowed) = server
        .grouper
        .lock()
        .map(|g| {
            (
                g.counters.received,
                g.groups().count(),
                g.counters.not_kept,
                g.counters.overflowed,
            )
        })
        .map_err(|_| "grouper poisoned".to_string())?;
    let sent = (storm_load.requests * batch) as u64;
    let mut total_sent = sent + (2 * load.requests * batch) as u64;
    let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
    let storm_row = Row {
        benchmark: bench.into(),
        arm: format!("storm of {sent} alerts"),
        median_us: 0.0,
        p99_us: 0.0,
        ratio: None,
        baseline: None,
        target: Some(format!(
            "{storm_rate:.0} alerts/s; {received} of {total_sent} received, {groups} groups, {not_kept} counted not kept, {overflowed} overflowed; RSS +{:.1} MiB",
            mib(after.saturating_sub(before))
        )),
        met: Some(received == total_sent),
    };

    // The same storm as Alertmanager sends it without `max_alerts`: one
    // group post holding every alert.
    let offset = 20_000_000;
    let one_post = webhook_body(&api_alerts(offset, storm), offset);
    let bytes_per_alert = one_post.len() as f64 / storm.max(1) as f64;
    let post_bytes = one_post.len();
    let before = super::startup::rss_bytes().unwrap_or(0);
    let single = Load {
        connections: 1,
        requests: 1,
        batch: storm,
    };
    let (one_rate, one_lat) = drive(rw_addr, "/webhooks/alertmanager", &single, move |_| {
        one_post.clone()
    })
    .await?;
    let after = super::startup::rss_bytes().unwrap_or(0);
    total_sent += storm as u64;
    let received = server
        .grouper
        .lock()
        .map(|g| g.counters.received)
        .map_err(|_| "grouper poisoned".to_string())?;
    let mut one_row = Row::new(
        bench,
        &format!("storm of {storm} alerts in one post"),
        &one_lat,
    );
    one_row.target = Some(format!(
        "{one_rate:.0} alerts/s; {post_bytes} bytes ({bytes_per_alert:.0} per alert); {received} of {total_sent} received; RSS +{:.1} MiB",
        mib(after.saturating_sub(before))
    ));
    one_row.met = Some(received == total_sent);
    Ok(vec![am_row, rw_row, storm_row, one_row])
}

//! Facts from what sources measured: metric series and log patterns, in
//! the vocabulary of `runwarden-observe` (a dependency named in error
//! lines with its error class; series classified by the exporters' metric
//! names in their PromQL, never by the name an operator gave the query).
//!
//! A source states its facts with its evidence (`runwarden:plugin@0.2.0`
//! `evidence.facts`); the host checks them (`stated`) and attributes each
//! to the evidence's kind. For evidence without facts — a 0.1.0 component,
//! or a source that states none — the host applies the same classification
//! to the body itself. Either way a failing dependency found here outranks
//! a recent change in the runbooks: the "false correlation" the project
//! must never make is a rollback while the provider is down.

use super::{Fact, Facts, Resource, Seen};
use crate::analysis::EvidenceItem;
use runwarden_observe::{Observed, Series};

pub use runwarden_observe::classify;

/// At most this many stated facts per evidence item; longer text is cut.
const MAX_STATED: usize = 32;
const MAX_TEXT: usize = 300;

/// Facts from every evidence item; `workload` is the incident's own name
/// (a dependency is anything else).
pub fn derive(evidence: &[EvidenceItem], workload: Option<&str>, facts: &mut Facts) {
    for e in evidence {
        let seen = match e.kind.as_str() {
            "metric-series" => Seen::Metric,
            "log-lines" => Seen::Log,
            "k8s-event" | "change-event" => Seen::Event,
            _ => Seen::Status,
        };
        let observed = if e.facts.is_empty() {
            from_body(e, workload)
        } else {
            e.facts.clone()
        };
        for o in observed {
            if let Some(f) = checked(o, seen, workload) {
                facts.push(f);
            }
        }
    }
}

/// What the host makes of a body when the source stated no facts: the
/// first-party shapes (prometheus' series summary, loki's top patterns).
fn from_body(e: &EvidenceItem, workload: Option<&str>) -> Vec<Observed> {
    let b = &e.body;
    match e.kind.as_str() {
        "metric-series" => {
            let (Some(now), Some(baseline)) = (b["now"].as_f64(), b["baseline"].as_f64()) else {
                return vec![];
            };
            let name = e.summary.split(':').next().unwrap_or(&e.summary);
            runwarden_observe::series_facts(
                &Series {
                    query: b["query"].as_str().unwrap_or_default(),
                    name,
                    job: b["labels"]["job"].as_str(),
                    baseline,
                    now,
                    changed_at_ms: b["changed_at"].as_i64(),
                },
                workload,
            )
        }
        "log-lines" => b["top_patterns"]
            .as_array()
            .map(|patterns| {
                patterns
                    .iter()
                    .filter(|p| p["error"].as_bool().unwrap_or(false))
                    .map(|p| {
                        runwarden_observe::log_fact(
                            p["example"].as_str().unwrap_or_default(),
                            p["count"].as_u64().unwrap_or(1),
                            workload,
                        )
                    })
                    .collect()
            })
            .unwrap_or_default(),
        _ => vec![],
    }
}

/// A fact as the host keeps it: attributed to the evidence that showed it,
/// with finite numbers and bounded text, and never the incident's own
/// workload as its failing dependency (that would turn the symptom into an
/// excuse not to act on its cause).
fn checked(o: Observed, seen: Seen, workload: Option<&str>) -> Option<Fact> {
    let text = |s: String| -> String { s.chars().take(MAX_TEXT).collect() };
    let finite = |v: f64| v.is_finite().then_some(v);
    Some(match o {
        Observed::DependencyFailure {
            dependency,
            error_class,
            detail,
        } => {
            let own = workload.is_some_and(|w| {
                dependency == w
                    || dependency.starts_with(&format!("{w}."))
                    || dependency.starts_with(&format!("{w}/"))
            });
            if own || dependency.trim().is_empty() {
                return None;
            }
            Fact::DependencyFailure {
                dependency: text(dependency),
                error_class: text(error_class),
                seen,
                detail: text(detail),
            }
        }
        Observed::MetricShift {
            signal,
            series,
            baseline,
            current,
            onset_ms,
        } => Fact::MetricShift {
            signal: text(signal),
            series: text(series),
            baseline: finite(baseline)?,
            current: finite(current)?,
            onset_ms,
        },
        Observed::Saturation {
            resource,
            utilisation,
            rising,
            detail,
        } => Fact::Saturation {
            resource: match resource {
                runwarden_observe::Resource::Cpu => Resource::Cpu,
                runwarden_observe::Resource::Memory => Resource::Memory,
                runwarden_observe::Resource::Disk => Resource::Disk,
            },
            utilisation: finite(utilisation).filter(|u| (0.0..=100.0).contains(u))?,
            rising,
            detail: text(detail),
        },
        Observed::LogErrors {
            class,
            count,
            example,
        } => Fact::LogErrors {
            class: text(class),
            count,
            example: text(example),
        },
        Observed::EndpointHealth { target, up } => Fact::EndpointHealth {
            target: text(target),
            up,
        },
    })
}

/// The facts a 0.2.0 source stated with one evidence item, in the shared
/// vocabulary (checked later, in `derive`). At most `MAX_STATED`.
pub fn stated(facts: &[crate::bindings::types::Fact]) -> Vec<Observed> {
    use crate::bindings::types::{Fact as W, ResourceKind as R};
    facts
        .iter()
        .take(MAX_STATED)
        .map(|f| match f {
            W::DependencyFailure(d) => Observed::DependencyFailure {
                dependency: d.dependency.clone(),
                error_class: d.error_class.clone(),
                detail: d.detail.clone(),
            },
            W::MetricShift(m) => Observed::MetricShift {
                signal: m.signal.clone(),
                series: m.series.clone(),
                baseline: m.baseline,
                current: m.current,
                onset_ms: m.onset,
            },
            W::Saturation(s) => Observed::Saturation {
                resource: match s.resource {
                    R::Cpu => runwarden_observe::Resource::Cpu,
                    R::Memory => runwarden_observe::Resource::Memory,
                    R::Disk => runwarden_observe::Resource::Disk,
                },
                utilisation: s.utilisation,
                rising: s.rising,
                detail: s.detail.clone(),
            },
            W::LogErrors(l) => Observed::LogErrors {
                class: l.class.clone(),
                count: l.count,
                example: l.example.clone(),
            },
            W::EndpointHealth(h) => Observed::EndpointHealth {
                target: h.target.clone(),
                up: h.up,
            },
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logs_of(lines: &[&str]) -> EvidenceItem {
        EvidenceItem {
            source: "loki".into(),
            kind: "log-lines".into(),
            summary: String::new(),
            body: serde_json::json!({"top_patterns": lines.iter().map(|l| serde_json::json!({
                "pattern": l, "count": 12, "error": true, "example": l})).collect::<Vec<_>>()}),
            facts: vec![],
        }
    }

    fn derived(e: &[EvidenceItem], w: &str) -> Vec<Fact> {
        let mut f = Facts::default();
        derive(e, Some(w), &mut f);
        f.items
    }

    #[test]
    fn a_dependency_in_the_logs_is_named_with_its_error_class() {
        let cases = [
            (
                "ERROR charge failed: POST https://api.stripe.com/v1/charges: 503 Service Unavailable",
                "api.stripe.com",
                "5xx",
            ),
            (
                "dial tcp 10.0.3.7:5432: connect: connection refused",
                "10.0.3.7",
                "connection-refused",
            ),
            (
                "upstream request timeout host=inventory.shop.svc.cluster.local",
                "inventory.shop.svc.cluster.local",
                "timeout",
            ),
            (
                "dial tcp: lookup redis-master on 10.96.0.10:53: server misbehaving",
                "redis-master",
                "dns",
            ),
            // Node's resolver cannot answer: the name looked up, not a URL.
            (
                r#"{"level":"error","msg":"request failed","err":"getaddrinfo EAI_AGAIN catalog.default.svc.cluster.local","code":"EAI_AGAIN"}"#,
                "catalog.default.svc.cluster.local",
                "dns",
            ),
            // A prober's line names its target URL first; the lookup that
            // failed is the dependency.
            (
                r#"module=http_2xx target=https://shop.example.com/ level=error msg="Error for HTTP request" err="Get \"https://cdn.example.net/x\": dial tcp: lookup cdn.example.net: i/o timeout""#,
                "cdn.example.net",
                "dns",
            ),
            (
                "psycopg2.OperationalError: could not connect to server: Connection refused postgres://app@db.internal:5432/shop",
                "db.internal",
                "connection-refused",
            ),
        ];
        for (line, host, class) in cases {
            let f = derived(&[logs_of(&[line])], "cart");
            assert!(
                f.iter().any(|f| matches!(f, Fact::DependencyFailure { dependency, error_class, seen: Seen::Log, .. } if dependency == host && error_class == class)),
                "{line}: {f:?}"
            );
        }
    }

    #[test]
    fn the_services_own_errors_are_not_a_dependency() {
        let f = derived(
            &[logs_of(&[
                "java.lang.OutOfMemoryError: Java heap space",
                "panic: runtime error: invalid memory address",
                "Error: environment variable DATABASE_URL is not set",
                "GET http://cart:8080/healthz timed out",
                "main.go:57: retry-after:30 upstream: connection refused",
            ])],
            "cart",
        );
        assert!(
            !f.iter()
                .any(|f| matches!(f, Fact::DependencyFailure { .. })),
            "{f:?}"
        );
        let classes: Vec<&str> = f
            .iter()
            .filter_map(|f| match f {
                Fact::LogErrors { class, .. } => Some(class.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(classes, ["oom", "panic", "config", "other", "other"]);
    }

    /// A name that does not exist is a wrong name in the caller's release
    /// or configuration, whoever logs it: not a dependency that fails.
    #[test]
    fn a_name_that_does_not_exist_is_the_callers_configuration() {
        for line in [
            "dial tcp: lookup redis-mastr on 10.96.0.10:53: no such host",
            r#"err="getaddrinfo ENOTFOUND catalog.default.svc","code":"ENOTFOUND""#,
            "java.net.UnknownHostException: payments-db.internal",
            "curl: (6) Could not resolve host: api.example.com; Name or service not known",
        ] {
            let f = derived(&[logs_of(&[line])], "cart");
            assert!(
                !f.iter()
                    .any(|f| matches!(f, Fact::DependencyFailure { .. })),
                "{line}: {f:?}"
            );
            assert!(
                f.iter()
                    .any(|f| matches!(f, Fact::LogErrors { class, .. } if class == "config")),
                "{line}: {f:?}"
            );
        }
    }

    /// What a 0.2.0 source states is used instead of its body, and checked:
    /// attributed to the evidence's kind, numbers finite and in range, text
    /// bounded, and never the incident's own workload as the failing
    /// dependency.
    #[test]
    fn stated_facts_replace_the_body_and_are_checked() {
        let item = |facts: Vec<Observed>| EvidenceItem {
            source: "third-party".into(),
            kind: "log-lines".into(),
            summary: String::new(),
            // A body the host would read as a dependency failure.
            body: serde_json::json!({"top_patterns": [{"pattern": "p", "count": 3, "error": true,
                "example": "POST https://api.stripe.com/v1: 503 Service Unavailable"}]}),
            facts,
        };
        let dep = |d: &str| Observed::DependencyFailure {
            dependency: d.into(),
            error_class: "timeout".into(),
            detail: "x".repeat(10_000),
        };
        let f = derived(
            &[item(vec![
                dep("inventory.shop.svc"),
                dep("cart"),
                dep("cart.shop.svc.cluster.local"),
                Observed::MetricShift {
                    signal: "latency".into(),
                    series: "p99".into(),
                    baseline: f64::NAN,
                    current: 2.0,
                    onset_ms: None,
                },
                Observed::Saturation {
                    resource: runwarden_observe::Resource::Cpu,
                    utilisation: 1e9,
                    rising: true,
                    detail: String::new(),
                },
            ])],
            "cart",
        );
        assert_eq!(f.len(), 1, "{f:?}");
        match &f[0] {
            Fact::DependencyFailure {
                dependency,
                seen,
                detail,
                ..
            } => {
                assert_eq!(dependency, "inventory.shop.svc");
                assert_eq!(*seen, Seen::Log);
                assert_eq!(detail.chars().count(), MAX_TEXT);
            }
            other => panic!("unexpected {other:?}"),
        }
        // No facts stated: the host reads the body as before.
        let f = derived(&[item(vec![])], "cart");
        assert!(f.iter().any(|f| matches!(f, Fact::DependencyFailure { dependency, .. } if dependency == "api.stripe.com")), "{f:?}");
    }

    #[test]
    fn promql_is_classified_by_standard_metric_names() {
        assert_eq!(
            classify(r#"sum(rate(http_requests_total{code=~"5.."}[1m]))"#),
            "error-rate"
        );
        assert_eq!(classify("min(up{job=~\"x-upstream.*\"})"), "up");
        assert_eq!(
            classify("rate(container_cpu_cfs_throttled_periods_total[5m])"),
            "throttling"
        );
        assert_eq!(
            classify(
                "container_memory_working_set_bytes / on(pod) kube_pod_container_resource_limits"
            ),
            "memory"
        );
        assert_eq!(
            classify("histogram_quantile(0.99, rate(http_request_duration_seconds_bucket[5m]))"),
            "latency"
        );
    }

    #[test]
    fn a_down_upstream_series_is_a_dependency_failure_and_the_services_own_is_not() {
        let up = |q: &str, now: f64| EvidenceItem {
            source: "prometheus".into(),
            kind: "metric-series".into(),
            summary: "upstream up: 1 -> 0".into(),
            body: serde_json::json!({"query": q, "baseline": 1.0, "now": now, "labels": {}}),
            facts: vec![],
        };
        let f = derived(&[up("min(up{job=~\"cart-upstream.*\"})", 0.0)], "cart");
        assert!(f.iter().any(|f| matches!(f, Fact::DependencyFailure { dependency, seen: Seen::Metric, .. } if dependency == "cart-upstream")), "{f:?}");
        let f = derived(&[up("min(up{job=\"cart\"})", 0.0)], "cart");
        assert!(
            !f.iter()
                .any(|f| matches!(f, Fact::DependencyFailure { .. })),
            "{f:?}"
        );
        let f = derived(&[up("min(up{job=~\"cart-upstream.*\"})", 1.0)], "cart");
        assert!(
            !f.iter()
                .any(|f| matches!(f, Fact::DependencyFailure { .. })),
            "{f:?}"
        );
    }
}

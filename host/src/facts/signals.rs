//! Facts from what sources measured: metric series (classified by the
//! exporters' standard metric names in their PromQL, not by the display
//! name an operator gave the query) and log patterns (a dependency named
//! in error lines — a host, an address, a URL — with its error class).
//!
//! A failing dependency found here outranks a recent change in the
//! runbooks: the "false correlation" the project must never make is a
//! rollback while the provider is down.

use super::{Fact, Facts, Resource, Seen};
use crate::analysis::EvidenceItem;
use regex::Regex;
use std::sync::LazyLock;

/// Facts from every evidence item; `workload` is the incident's own name
/// (a dependency is anything else).
pub fn derive(evidence: &[EvidenceItem], workload: Option<&str>, facts: &mut Facts) {
    for e in evidence {
        match e.kind.as_str() {
            "metric-series" => metric(e, workload, facts),
            "log-lines" => logs(e, workload, facts),
            _ => {}
        }
    }
}

/// What a PromQL expression measures, from the standard metric names of
/// Prometheus exporters and instrumentation conventions.
pub fn classify(promql: &str) -> &'static str {
    let q = promql.to_lowercase();
    let has = |s: &str| q.contains(s);
    if has("probe_success") || q.trim_start().starts_with("up{") || has("(up{") {
        "up"
    } else if has("cfs_throttled") {
        "throttling"
    } else if has("code=~\"5")
        || has("status=~\"5")
        || has("5xx")
        || has("_errors")
        || has("error_ratio")
    {
        "error-rate"
    } else if has("duration_seconds") || has("latency") {
        "latency"
    } else if has("restarts_total") {
        "restarts"
    } else if has("cpu") {
        "cpu"
    } else if has("memory") {
        "memory"
    } else if has("filesystem") || has("volume_stats") {
        "disk"
    } else if has("requests_total") {
        "traffic"
    } else {
        "other"
    }
}

static JOB_MATCHER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?:job|instance|target)=~?"([^"]+)""#).unwrap_or_else(|_| unreachable!())
});

fn metric(e: &EvidenceItem, workload: Option<&str>, facts: &mut Facts) {
    let b = &e.body;
    let (Some(now), Some(baseline)) = (b["now"].as_f64(), b["baseline"].as_f64()) else {
        return;
    };
    let query = b["query"].as_str().unwrap_or_default();
    let series = e
        .summary
        .split(':')
        .next()
        .unwrap_or(&e.summary)
        .to_string();
    let signal = classify(query);
    // The prometheus plugin reports points and `changed_at` in ms.
    let onset_ms = b["changed_at"].as_i64();
    match signal {
        "up" => {
            // What the data says it is (the series' own job), else what
            // the query asked for.
            let target = b["labels"]["job"]
                .as_str()
                .map(str::to_string)
                .or_else(|| {
                    JOB_MATCHER.captures(query).and_then(|c| c.get(1)).map(|m| {
                        m.as_str()
                            .trim_end_matches(".*")
                            .trim_end_matches('-')
                            .to_string()
                    })
                })
                .unwrap_or_else(|| series.clone());
            let up = now >= 0.5;
            facts.push(Fact::EndpointHealth {
                target: target.clone(),
                up,
            });
            // A probe checks the service's own endpoint: its failure is the
            // symptom, not a dependency. So is the workload's own target,
            // and an exporter's.
            let probe = query.contains("probe_success");
            let own = workload.is_some_and(|w| target == w || target.starts_with(&format!("{w}/")))
                || target.contains("blackbox")
                || target.contains("exporter");
            if !up && !probe && !own {
                facts.push(Fact::DependencyFailure {
                    dependency: target,
                    error_class: "down".into(),
                    seen: Seen::Metric,
                    detail: format!("{series} at {now}"),
                });
            }
        }
        _ => {
            let moved = (now - baseline).abs() > f64::max(baseline.abs() * 0.5, 1e-6);
            if moved {
                facts.push(Fact::MetricShift {
                    signal: signal.into(),
                    series: series.clone(),
                    baseline,
                    current: now,
                    onset_ms,
                });
            }
            // Ratios of a limit: saturation.
            let resource = match signal {
                "cpu" => Some(Resource::Cpu),
                "memory" => Some(Resource::Memory),
                "disk" => Some(Resource::Disk),
                _ => None,
            };
            if let Some(resource) = resource
                && query.contains("limit")
                && (0.8..=10.0).contains(&now)
            {
                facts.push(Fact::Saturation {
                    resource,
                    utilisation: now,
                    rising: now > baseline * 1.2,
                    detail: format!("{series} {baseline:.2} -> {now:.2} of the limit"),
                });
            }
        }
    }
}

/// The error class of a log line, if it is one that names a failing
/// dependency.
fn dependency_class(line: &str) -> Option<&'static str> {
    let l = line.to_lowercase();
    let has = |s: &str| l.contains(s);
    // A name that does not exist (NXDOMAIN) is the caller's configuration
    // — a wrong host in a release or a config map — not a dependency
    // failing: it is the workload's own error (`own_error_class`).
    if names_no_such_host(&l) {
        return None;
    }
    // Name resolution first: "lookup x: i/o timeout" is a DNS failure.
    if has("name resolution")
        || has("getaddrinfo")
        || has("eai_again")
        || has("lookup ")
        || has("server misbehaving")
        || has("temporary failure in name")
        || has("servfail")
    {
        Some("dns")
    } else if has("connection refused") || has("econnrefused") {
        Some("connection-refused")
    } else if has("failed to connect")
        || has("could not connect")
        || has("unable to connect")
        || has("no available connection")
        || has("cannot connect")
    {
        Some("connection-failed")
    } else if has("timed out") || has("timeout") || has("deadline exceeded") {
        Some("timeout")
    } else if has("x509") || has("certificate") || has("tls handshake") {
        Some("tls")
    } else if has("connection reset") || has("econnreset") || has("broken pipe") {
        Some("connection-reset")
    } else if STATUS_5XX.is_match(&l) {
        Some("5xx")
    } else if has("unavailable") || has("upstream") || has("circuit breaker") {
        Some("unavailable")
    } else {
        None
    }
}

/// Whether a (lower-cased) line says a name does not exist: Go's "no such
/// host", Node's ENOTFOUND, glibc's "Name or service not known", Java's
/// UnknownHostException, an NXDOMAIN answer. A resolver that cannot answer
/// (EAI_AGAIN, SERVFAIL, timeouts) is a different thing: DNS failing.
fn names_no_such_host(l: &str) -> bool {
    [
        "no such host",
        "nxdomain",
        "enotfound",
        "name or service not known",
        "unknownhostexception",
    ]
    .iter()
    .any(|m| l.contains(m))
}

/// An error line's class when it names no dependency.
fn own_error_class(line: &str) -> &'static str {
    let l = line.to_lowercase();
    let has = |s: &str| l.contains(s);
    if names_no_such_host(&l) {
        return "config";
    }
    if has("outofmemory")
        || has("out of memory")
        || has("oomkill")
        || has("heap space")
        || has("memoryerror")
    {
        "oom"
    } else if has("permission denied") || has("forbidden") || has("unauthorized") {
        "permission"
    } else if has("no space left") || has("disk full") {
        "disk"
    } else if has("panic") || has("segfault") || has("fatal") || has("traceback") {
        "panic"
    } else if has("config") || has("env") || has("not set") || has("missing") || has("no such file")
    {
        "config"
    } else {
        "other"
    }
}

static STATUS_5XX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"(?:status|code|http)[ =:/]*5\d\d\b|http/\d(?:\.\d)?"?\s+5\d\d\b|\b5\d\d (?:service unavailable|bad gateway|internal server error|gateway timeout)"#)
        .unwrap_or_else(|_| unreachable!())
});

/// Ways a line names a host, most reliable first: a URL's host, `dial tcp
/// HOST:PORT` (Go), `host=HOST`, then a bare `HOST:PORT` with a dotted
/// name.
static HOSTS: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    [
        r"(?i)\b(?:https?|grpcs?|wss?|postgres(?:ql)?|mysql|redis|amqps?|mongodb(?:\+srv)?)://(?:[^@/\s]+@)?([a-z0-9][a-z0-9.-]*[a-z0-9])",
        r"(?i)dial tcp:? (?:lookup )?([a-z0-9][a-z0-9.-]*[a-z0-9])",
        r#"(?i)\b(?:host|hostname|upstream|addr|address|peer)\s*=\s*"?`?([a-z0-9][a-z0-9.-]*[a-z0-9])"#,
        // A dotted or hyphenated name with a port: "db.internal:5432",
        // "prod-db:3333".
        r"(?i)\b([a-z][a-z0-9]*(?:[.-][a-z0-9]+)+):\d{2,5}\b",
    ]
    .iter()
    .filter_map(|r| Regex::new(r).ok())
    .collect()
});

/// Source files and header-like words that look like `name:port`.
fn not_a_host(h: &str) -> bool {
    const SOURCE: [&str; 14] = [
        ".go", ".java", ".py", ".rs", ".js", ".ts", ".rb", ".cs", ".cpp", ".c", ".h", ".kt",
        ".scala", ".php",
    ];
    SOURCE.iter().any(|ext| h.ends_with(ext))
        || [
            "retry-after",
            "content-length",
            "x-request-id",
            "keep-alive",
        ]
        .contains(&h)
}

/// The name a failed lookup was for: Node's `getaddrinfo EAI_AGAIN host`,
/// Go's `lookup host on 10.96.0.10:53` / `lookup host: ...`.
static LOOKED_UP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)getaddrinfo [a-z_]+ ([a-z0-9][a-z0-9.-]*[a-z0-9])|\blookup ([a-z0-9][a-z0-9.-]*[a-z0-9])(?: on |: )")
        .unwrap_or_else(|_| unreachable!())
});

fn named_host(line: &str, class: Option<&str>) -> Option<String> {
    // For a DNS failure, the name being resolved is the one that matters
    // (a prober's line also names its target URL first).
    if class == Some("dns")
        && let Some(h) = LOOKED_UP
            .captures(line)
            .and_then(|c| c.get(1).or_else(|| c.get(2)))
    {
        return Some(h.as_str().to_lowercase());
    }
    HOSTS.iter().find_map(|re| {
        re.captures_iter(line)
            .filter_map(|c| c.get(1))
            .map(|m| m.as_str().to_lowercase())
            .find(|h| !not_a_host(h))
    })
}

fn logs(e: &EvidenceItem, workload: Option<&str>, facts: &mut Facts) {
    let Some(patterns) = e.body["top_patterns"].as_array() else {
        return;
    };
    for p in patterns {
        if !p["error"].as_bool().unwrap_or(false) {
            continue;
        }
        let example = p["example"].as_str().unwrap_or_default();
        let count = p["count"].as_u64().unwrap_or(1);
        let own = |h: &str| {
            workload.is_some_and(|w| h == w || h.starts_with(&format!("{w}.")))
                || h == "localhost"
                || h.starts_with("127.")
        };
        let class = dependency_class(example);
        match (class, named_host(example, class)) {
            (Some(class), Some(host)) if !own(&host) => facts.push(Fact::DependencyFailure {
                dependency: host,
                error_class: class.into(),
                seen: Seen::Log,
                detail: format!("{count}x \"{}\"", clip(example)),
            }),
            _ => facts.push(Fact::LogErrors {
                class: own_error_class(example).into(),
                count,
                example: clip(example),
            }),
        }
    }
}

fn clip(s: &str) -> String {
    s.chars().take(160).collect()
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

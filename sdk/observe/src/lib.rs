//! What a measurement means, in the fact vocabulary runwarden's runbooks,
//! prompts and reports share: a metric series classified by the exporters'
//! standard metric names in its PromQL (not by the display name an operator
//! gave the query), a log line's failing dependency (a host, an address, a
//! URL it names) with its error class, or the workload's own error.
//!
//! One implementation for both sides of the plugin contract: first-party
//! plugins emit these as WIT facts (`runwarden:plugin/types.fact`), and the
//! host derives the same from a 0.1.0 component's evidence bodies. Pure
//! Rust: it builds for wasm32-wasip2 and natively.

use regex::Regex;
use std::sync::LazyLock;

/// A resource a workload can exhaust.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Cpu,
    Memory,
    Disk,
}

/// One observation, as a source can state it.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// Something the workload depends on is failing.
    DependencyFailure {
        dependency: String,
        /// "5xx", "connection-refused", "connection-failed", "timeout",
        /// "dns", "tls", "connection-reset", "unavailable", "down".
        error_class: String,
        detail: String,
    },
    /// A series moved away from its baseline.
    MetricShift {
        /// "error-rate", "latency", "cpu", "memory", "throttling",
        /// "restarts", "disk", "traffic", "other".
        signal: String,
        series: String,
        baseline: f64,
        current: f64,
        onset_ms: Option<i64>,
    },
    /// A resource near its limit (utilisation of the limit, 0..1+).
    Saturation {
        resource: Resource,
        utilisation: f64,
        rising: bool,
        detail: String,
    },
    /// Error lines of the workload's own: "oom", "config", "panic",
    /// "permission", "disk", "other".
    LogErrors {
        class: String,
        count: u64,
        example: String,
    },
    /// A probe or scrape target, up or down.
    EndpointHealth { target: String, up: bool },
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

/// One metric series as a source summarised it.
#[derive(Debug, Clone, Default)]
pub struct Series<'a> {
    /// The PromQL that produced it: what it measures is read from here.
    pub query: &'a str,
    /// The name the operator gave the query (display only).
    pub name: &'a str,
    /// The series' own `job` label, if any.
    pub job: Option<&'a str>,
    pub baseline: f64,
    pub now: f64,
    /// When it first moved away from its baseline (Unix ms).
    pub changed_at_ms: Option<i64>,
}

/// What a series says: a shift from its baseline, a resource near its
/// limit, a target up or down (a dependency failing when it is neither the
/// workload's own target, a probe of it, nor an exporter).
pub fn series_facts(s: &Series<'_>, workload: Option<&str>) -> Vec<Observed> {
    let mut out = Vec::new();
    let (now, baseline) = (s.now, s.baseline);
    if !now.is_finite() || !baseline.is_finite() {
        return out;
    }
    let series = s.name.to_string();
    let signal = classify(s.query);
    match signal {
        "up" => {
            // What the data says it is (the series' own job), else what
            // the query asked for.
            let target = s
                .job
                .map(str::to_string)
                .or_else(|| {
                    JOB_MATCHER
                        .captures(s.query)
                        .and_then(|c| c.get(1))
                        .map(|m| {
                            m.as_str()
                                .trim_end_matches(".*")
                                .trim_end_matches('-')
                                .to_string()
                        })
                })
                .unwrap_or_else(|| series.clone());
            let up = now >= 0.5;
            out.push(Observed::EndpointHealth {
                target: target.clone(),
                up,
            });
            // A probe checks the service's own endpoint: its failure is the
            // symptom, not a dependency. So is the workload's own target,
            // and an exporter's.
            let probe = s.query.contains("probe_success");
            let own = workload.is_some_and(|w| target == w || target.starts_with(&format!("{w}/")))
                || target.contains("blackbox")
                || target.contains("exporter");
            if !up && !probe && !own {
                out.push(Observed::DependencyFailure {
                    dependency: target,
                    error_class: "down".into(),
                    detail: format!("{series} at {now}"),
                });
            }
        }
        _ => {
            let moved = (now - baseline).abs() > f64::max(baseline.abs() * 0.5, 1e-6);
            if moved {
                out.push(Observed::MetricShift {
                    signal: signal.into(),
                    series: series.clone(),
                    baseline,
                    current: now,
                    onset_ms: s.changed_at_ms,
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
                && s.query.contains("limit")
                && (0.8..=10.0).contains(&now)
            {
                out.push(Observed::Saturation {
                    resource,
                    utilisation: now,
                    rising: now > baseline * 1.2,
                    detail: format!("{series} {baseline:.2} -> {now:.2} of the limit"),
                });
            }
        }
    }
    out
}

/// The error class of a log line, if it is one that names a failing
/// dependency.
pub fn dependency_class(line: &str) -> Option<&'static str> {
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
pub fn own_error_class(line: &str) -> &'static str {
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

pub fn named_host(line: &str, class: Option<&str>) -> Option<String> {
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

/// What one error-like log pattern says: a dependency failing (a host it
/// names, with the error class), or the workload's own error.
pub fn log_fact(example: &str, count: u64, workload: Option<&str>) -> Observed {
    let own = |h: &str| {
        workload.is_some_and(|w| h == w || h.starts_with(&format!("{w}.")))
            || h == "localhost"
            || h.starts_with("127.")
    };
    let class = dependency_class(example);
    match (class, named_host(example, class)) {
        (Some(class), Some(host)) if !own(&host) => Observed::DependencyFailure {
            dependency: host,
            error_class: class.into(),
            detail: format!("{count}x \"{}\"", clip(example)),
        },
        _ => Observed::LogErrors {
            class: own_error_class(example).into(),
            count,
            example: clip(example),
        },
    }
}

pub fn clip(s: &str) -> String {
    s.chars().take(160).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(query: &str, job: Option<&'static str>, baseline: f64, now: f64) -> Vec<Observed> {
        series_facts(
            &Series {
                query,
                name: "s",
                job,
                baseline,
                now,
                changed_at_ms: Some(1),
            },
            Some("cart"),
        )
    }

    #[test]
    fn a_down_target_is_a_dependency_unless_it_is_the_workload_a_probe_or_an_exporter() {
        let down = |q: &str, job| {
            series(q, job, 1.0, 0.0)
                .iter()
                .any(|o| matches!(o, Observed::DependencyFailure { .. }))
        };
        assert!(down(r#"min(up{job="payments-db"})"#, None));
        assert!(!down(r#"min(up{job="cart"})"#, None));
        assert!(!down(r#"min(up{job="x"})"#, Some("node-exporter")));
        assert!(!down(
            r#"min(probe_success{instance="https://cart"})"#,
            None
        ));
    }

    #[test]
    fn a_ratio_of_a_limit_near_one_is_saturation_and_a_raw_value_is_not() {
        let q = "max(rate(container_cpu_usage_seconds_total[2m]) / on(pod) kube_pod_container_resource_limits)";
        assert!(series(q, None, 0.4, 0.95).iter().any(|o| matches!(
            o,
            Observed::Saturation {
                resource: Resource::Cpu,
                rising: true,
                ..
            }
        )));
        assert!(
            !series(
                "sum(rate(container_cpu_usage_seconds_total[2m]))",
                None,
                0.4,
                0.95
            )
            .iter()
            .any(|o| matches!(o, Observed::Saturation { .. }))
        );
        // Not finite: nothing at all.
        assert!(series(q, None, f64::NAN, 0.95).is_empty());
    }

    #[test]
    fn a_log_line_names_its_dependency_or_is_the_workloads_own() {
        assert_eq!(
            log_fact(
                "dial tcp 10.0.3.7:5432: connect: connection refused",
                4,
                Some("cart")
            ),
            Observed::DependencyFailure {
                dependency: "10.0.3.7".into(),
                error_class: "connection-refused".into(),
                detail: "4x \"dial tcp 10.0.3.7:5432: connect: connection refused\"".into(),
            }
        );
        assert!(matches!(
            log_fact("GET http://cart.shop.svc:8080/x timed out", 1, Some("cart")),
            Observed::LogErrors { .. }
        ));
    }
}

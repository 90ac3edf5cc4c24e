//! Which runbook an alert gets: by name, by an alias other rule sets and
//! titles give the same condition, by the `runbook_url` annotation, by
//! label or title matchers, and last the fallback.

use super::{Runbook, opt_regex};
use regex::Regex;
use serde::Deserialize;
use std::collections::BTreeMap;

/// One way to recognise the condition a runbook handles: every given
/// label matches its regex (anchored), and the title (the alert's name
/// for free-text senders: PagerDuty, OpsGenie, Grafana) matches.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertMatch {
    #[serde(default, with = "regex_map")]
    pub labels: BTreeMap<String, Regex>,
    #[serde(default, with = "opt_regex")]
    pub title: Option<Regex>,
}

impl AlertMatch {
    fn matches(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        if self.labels.is_empty() && self.title.is_none() {
            return false;
        }
        self.labels
            .iter()
            .all(|(k, re)| labels.get(k).is_some_and(|v| re.is_match(v)))
            && self.title.as_ref().is_none_or(|re| re.is_match(name))
    }
}

mod regex_map {
    use regex::Regex;
    use serde::Deserialize;
    use std::collections::BTreeMap;

    pub fn deserialize<'de, D: serde::Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Regex>, D::Error> {
        BTreeMap::<String, String>::deserialize(d)?
            .into_iter()
            .map(|(k, v)| {
                Regex::new(&format!("^(?:{v})$"))
                    .map(|re| (k, re))
                    .map_err(|e| serde::de::Error::custom(format!("invalid regex {v:?}: {e}")))
            })
            .collect()
    }
}

/// "KubePodCrashLooping", "Kube pod crash-looping" -> "kubepodcrashlooping".
pub fn normalise_name(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The runbook for an alert: by name, by an alias, by the `runbook_url`
/// annotation's last path segment (kube-prometheus links to
/// `.../kubernetes/kubepodcrashlooping`), then by label or title matchers.
/// Returns the runbook and how it was found.
pub fn find<'a>(
    runbooks: &'a BTreeMap<String, Runbook>,
    name: &str,
    labels: &BTreeMap<String, String>,
    runbook_url: Option<&str>,
) -> Option<(&'a Runbook, String)> {
    if let Some(rb) = runbooks.get(name) {
        return Some((rb, "alert name".into()));
    }
    let wanted = normalise_name(name);
    let by_name = |n: &str| {
        runbooks.values().find(|r| {
            normalise_name(&r.alert) == n || r.aliases.iter().any(|a| normalise_name(a) == n)
        })
    };
    if !wanted.is_empty()
        && let Some(rb) = by_name(&wanted)
    {
        return Some((rb, format!("alias of {name}")));
    }
    if let Some(slug) = runbook_url
        .and_then(|u| u.trim_end_matches('/').rsplit('/').next())
        .map(|s| s.trim_end_matches(".md").trim_end_matches(".html"))
        .map(normalise_name)
        .filter(|s| !s.is_empty())
        && let Some(rb) = by_name(&slug)
    {
        return Some((rb, "runbook_url".into()));
    }
    runbooks
        .values()
        .find(|r| r.matches.iter().any(|m| m.matches(name, labels)))
        .map(|rb| (rb, "label or title match".into()))
        .or_else(|| {
            runbooks
                .values()
                .find(|r| r.fallback)
                .map(|rb| (rb, "fallback".into()))
        })
}

//! gitleaks' default rule set, as data (`gitleaks.toml`, MIT, vendored
//! unchanged from gitleaks/gitleaks at b58d3f1, 2026-07-22; its licence is
//! `LICENSE-gitleaks` beside it). Maintained upstream by people who track
//! new credential formats; updating is replacing the file.
//!
//! Run the way gitleaks runs it: a rule is tried only when one of its
//! keywords occurs (one Aho-Corasick pass over the text finds which), its
//! regex is compiled the first time it is needed, the secret is the rule's
//! `secretGroup` (else the first non-empty group, else the whole match), and
//! a rule with an `entropy` floor skips secrets less random than that.
//! Patterns are Go RE2; they are compiled over bytes with Unicode off, so
//! `\w`, `\s` and `\b` mean what they mean in Go.

use aho_corasick::AhoCorasick;
use std::sync::OnceLock;

const RULES: &str = include_str!("gitleaks.toml");

#[derive(serde::Deserialize)]
struct File {
    rules: Vec<RuleSpec>,
}

#[derive(serde::Deserialize)]
struct RuleSpec {
    id: String,
    regex: Option<String>,
    #[serde(default)]
    keywords: Vec<String>,
    entropy: Option<f64>,
    #[serde(rename = "secretGroup")]
    secret_group: Option<usize>,
}

struct Rule {
    spec: RuleSpec,
    compiled: OnceLock<Option<regex::bytes::Regex>>,
}

impl Rule {
    fn regex(&self) -> Option<&regex::bytes::Regex> {
        self.compiled
            .get_or_init(|| {
                let pattern = self.spec.regex.as_deref()?;
                regex::bytes::RegexBuilder::new(&format!("(?-u){pattern}"))
                    .size_limit(64 << 20)
                    .build()
                    .inspect_err(|e| {
                        tracing::warn!(rule = %self.spec.id, "a gitleaks rule does not compile: {e}")
                    })
                    .ok()
            })
            .as_ref()
    }
}

struct RuleSet {
    rules: Vec<Rule>,
    /// Every keyword, lower-case; `owners[i]` are the rules of keyword `i`.
    keywords: Option<AhoCorasick>,
    owners: Vec<Vec<usize>>,
    /// Rules without keywords, tried on every text.
    always: Vec<usize>,
}

fn rule_set() -> &'static RuleSet {
    static SET: OnceLock<RuleSet> = OnceLock::new();
    SET.get_or_init(|| {
        // The file is compiled in and checked by a unit test: a parse error
        // here would be a build defect, so it degrades to no rules (the
        // local rules still run) rather than panicking.
        let specs = toml::from_str::<File>(RULES)
            .inspect_err(|e| tracing::error!("the vendored gitleaks rules do not parse: {e}"))
            .map(|f| f.rules)
            .unwrap_or_default();
        let rules: Vec<Rule> = specs
            .into_iter()
            .filter(|s| s.regex.is_some())
            .map(|spec| Rule {
                spec,
                compiled: OnceLock::new(),
            })
            .collect();
        let mut words: Vec<String> = Vec::new();
        let mut owners: Vec<Vec<usize>> = Vec::new();
        let mut always = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            if rule.spec.keywords.is_empty() {
                always.push(i);
            }
            for k in &rule.spec.keywords {
                let k = k.to_ascii_lowercase();
                match words.iter().position(|w| *w == k) {
                    Some(at) => owners[at].push(i),
                    None => {
                        words.push(k);
                        owners.push(vec![i]);
                    }
                }
            }
        }
        let keywords = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .build(&words)
            .inspect_err(|e| tracing::error!("the gitleaks keywords do not build: {e}"))
            .ok();
        RuleSet {
            rules,
            keywords,
            owners,
            always,
        }
    })
}

/// A secret found: its byte range in the text and the rule that found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub start: usize,
    pub end: usize,
    pub rule: &'static str,
}

/// Every secret the rule set finds in `text`.
pub fn find(text: &str) -> Vec<Finding> {
    let set = rule_set();
    let mut candidates: Vec<usize> = set.always.clone();
    if let Some(keywords) = &set.keywords {
        for m in keywords.find_overlapping_iter(text) {
            if let Some(rules) = set.owners.get(m.pattern().as_usize()) {
                candidates.extend(rules);
            }
        }
    }
    candidates.sort_unstable();
    candidates.dedup();
    let mut out = Vec::new();
    for i in candidates {
        let rule = &set.rules[i];
        let Some(re) = rule.regex() else { continue };
        for caps in re.captures_iter(text.as_bytes()) {
            let group = match rule.spec.secret_group {
                Some(g) => caps.get(g),
                None => (1..caps.len())
                    .filter_map(|g| caps.get(g))
                    .find(|m| !m.is_empty())
                    .or_else(|| caps.get(0)),
            };
            let Some(m) = group else { continue };
            if m.is_empty() {
                continue;
            }
            if let Some(floor) = rule.spec.entropy
                && shannon_entropy(m.as_bytes()) < floor
            {
                continue;
            }
            out.push(Finding {
                start: m.start(),
                end: m.end(),
                rule: rule.spec.id.as_str(),
            });
        }
    }
    out
}

/// Bits per byte, as gitleaks computes it.
pub fn shannon_entropy(data: &[u8]) -> f64 {
    if data.is_empty() {
        return 0.0;
    }
    let mut counts = [0usize; 256];
    for b in data {
        counts[usize::from(*b)] += 1;
    }
    let n = data.len() as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = *c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// How many rules the set has, and the ids of those that do not compile.
pub fn health() -> (usize, Vec<String>) {
    let set = rule_set();
    let broken = set
        .rules
        .iter()
        .filter(|r| r.regex().is_none())
        .map(|r| r.spec.id.clone())
        .collect();
    (set.rules.len(), broken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_vendored_rules_parse_and_every_regex_compiles() {
        let (n, broken) = health();
        assert!(n > 200, "{n} rules");
        assert!(broken.is_empty(), "rules that do not compile: {broken:?}");
    }

    #[test]
    fn entropy_is_bits_per_byte() {
        assert_eq!(shannon_entropy(b"aaaa"), 0.0);
        assert!((shannon_entropy(b"abcd") - 2.0).abs() < 1e-9);
    }

    #[test]
    fn a_rule_runs_only_on_its_keyword_and_names_itself() {
        let found = find("key AKIAZ3MQ7TPLXW4HRN6V for s3");
        assert!(
            found.iter().any(|f| f.rule == "aws-access-token"),
            "{found:?}"
        );
        assert!(find("no keyword here, AKIA alone").is_empty());
    }
}

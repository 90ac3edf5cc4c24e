//! What changed between two versions of a plugin, for a reviewer and for a
//! CI gate (`runwarden plugin diff OLD NEW`): imports, tools and their
//! effects and risks, requested and granted capabilities, limits. Every
//! change says whether it **grows** what the plugin can do — a new import, a
//! new tool, a mutate where there was a read, a higher risk, a new element
//! in a grant or request, a higher limit — so the gate can fail on growth
//! and let narrowing through.

use crate::inspect::Report;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// Where, e.g. "requested k8s.operations".
    pub what: String,
    pub before: Option<String>,
    pub after: Option<String>,
    pub grows: bool,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mark = if self.grows { "+" } else { "-" };
        match (&self.before, &self.after) {
            (None, Some(a)) => write!(f, "{mark} {}: added {a}", self.what),
            (Some(b), None) => write!(f, "{mark} {}: removed {b}", self.what),
            (Some(b), Some(a)) => write!(f, "{mark} {}: {b} -> {a}", self.what),
            (None, None) => write!(f, "{mark} {}", self.what),
        }
    }
}

/// A leaf of a flattened JSON document.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Leaf {
    /// A table that is present (a capability requested at all).
    Present,
    /// `null`: for requests and grants, "no restriction".
    Any,
    Scalar(String),
    /// One element of an array.
    Element(String),
}

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

fn flatten(v: &Value, path: &str, out: &mut BTreeSet<(String, Leaf)>) {
    match v {
        Value::Object(map) => {
            if !path.is_empty() {
                out.insert((path.to_string(), Leaf::Present));
            }
            for (k, v) in map {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                flatten(v, &p, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                out.insert((path.to_string(), Leaf::Element(text(item))));
            }
        }
        Value::Null => {
            out.insert((path.to_string(), Leaf::Any));
        }
        other => {
            out.insert((path.to_string(), Leaf::Scalar(text(other))));
        }
    }
}

/// Changes between two JSON documents of capabilities or limits.
pub fn json_changes(old: &Value, new: &Value) -> Vec<Change> {
    let (mut a, mut b) = (BTreeSet::new(), BTreeSet::new());
    flatten(old, "", &mut a);
    flatten(new, "", &mut b);
    let scalars = |s: &BTreeSet<(String, Leaf)>| -> BTreeMap<String, Leaf> {
        s.iter()
            .filter(|(_, l)| matches!(l, Leaf::Scalar(_) | Leaf::Any))
            .cloned()
            .collect()
    };
    let (sa, sb) = (scalars(&a), scalars(&b));
    let mut changes = Vec::new();
    // Scalars changed in place (limits, ceilings), or a restriction lifted.
    for (path, before) in &sa {
        if let Some(after) = sb.get(path)
            && before != after
        {
            let grows = match (before, after) {
                (Leaf::Scalar(x), Leaf::Scalar(y)) => match (x.parse::<f64>(), y.parse::<f64>()) {
                    (Ok(x), Ok(y)) => y > x,
                    _ => true,
                },
                (_, Leaf::Any) => true,
                _ => true,
            };
            changes.push(Change {
                what: path.clone(),
                before: Some(show(before)),
                after: Some(show(after)),
                grows,
            });
        }
    }
    for (path, leaf) in b.difference(&a) {
        if sa.contains_key(path) && matches!(leaf, Leaf::Scalar(_) | Leaf::Any) {
            continue; // reported above
        }
        // A list replacing "any" narrows; everything else added grows.
        let narrows = matches!(leaf, Leaf::Element(_)) && sa.get(path) == Some(&Leaf::Any);
        changes.push(Change {
            what: path.clone(),
            before: None,
            after: Some(show(leaf)),
            grows: !narrows,
        });
    }
    for (path, leaf) in a.difference(&b) {
        if sb.contains_key(path) && matches!(leaf, Leaf::Scalar(_) | Leaf::Any) {
            continue;
        }
        // "any" replacing a list widens.
        let widens = matches!(leaf, Leaf::Element(_)) && sb.get(path) == Some(&Leaf::Any);
        if widens {
            continue; // reported as the scalar `any` added
        }
        changes.push(Change {
            what: path.clone(),
            before: Some(show(leaf)),
            after: None,
            grows: false,
        });
    }
    changes
}

fn show(l: &Leaf) -> String {
    match l {
        Leaf::Present => "(present)".into(),
        Leaf::Any => "any".into(),
        Leaf::Scalar(s) | Leaf::Element(s) => s.clone(),
    }
}

fn risk_rank(r: &str) -> u8 {
    match r {
        "low" => 0,
        "medium" => 1,
        _ => 2,
    }
}

fn json<T: Serialize>(v: &Option<T>) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn prefixed(section: &str, mut changes: Vec<Change>) -> Vec<Change> {
    for c in &mut changes {
        c.what = format!("{section} {}", c.what);
    }
    changes
}

/// Everything that changed from `old` to `new`.
pub fn diff(old: &Report, new: &Report) -> Vec<Change> {
    let mut out = Vec::new();
    let (ia, ib): (BTreeSet<&String>, BTreeSet<&String>) = (
        old.interfaces.imports.iter().collect(),
        new.interfaces.imports.iter().collect(),
    );
    for i in ib.difference(&ia) {
        out.push(Change {
            what: "import".into(),
            before: None,
            after: Some((*i).clone()),
            grows: true,
        });
    }
    for i in ia.difference(&ib) {
        out.push(Change {
            what: "import".into(),
            before: Some((*i).clone()),
            after: None,
            grows: false,
        });
    }
    let tools = |r: &Report| -> BTreeMap<String, (String, String, bool, Value)> {
        r.tools
            .iter()
            .map(|t| {
                (
                    t.name.clone(),
                    (
                        t.effect.to_string(),
                        t.risk.to_string(),
                        t.reversible,
                        t.parameters.clone(),
                    ),
                )
            })
            .collect()
    };
    let (ta, tb) = (tools(old), tools(new));
    for (name, (effect, risk, _, _)) in &tb {
        match ta.get(name) {
            None => out.push(Change {
                what: "tool".into(),
                before: None,
                after: Some(format!("{name} ({effect}, {risk} risk)")),
                grows: true,
            }),
            Some((e0, r0, rev0, p0)) => {
                let (_, _, rev1, p1) = &tb[name];
                if e0 != effect {
                    out.push(Change {
                        what: format!("tool {name} effect"),
                        before: Some(e0.clone()),
                        after: Some(effect.clone()),
                        grows: effect == "mutate",
                    });
                }
                if r0 != risk {
                    out.push(Change {
                        what: format!("tool {name} risk"),
                        before: Some(r0.clone()),
                        after: Some(risk.clone()),
                        grows: risk_rank(risk) > risk_rank(r0),
                    });
                }
                if rev0 != rev1 {
                    out.push(Change {
                        what: format!("tool {name} reversible"),
                        before: Some(rev0.to_string()),
                        after: Some(rev1.to_string()),
                        grows: !rev1,
                    });
                }
                if p0 != p1 {
                    out.extend(prefixed(
                        &format!("tool {name} parameters"),
                        json_changes(p0, p1),
                    ));
                }
            }
        }
    }
    for name in ta.keys().filter(|n| !tb.contains_key(*n)) {
        out.push(Change {
            what: "tool".into(),
            before: Some(name.clone()),
            after: None,
            grows: false,
        });
    }
    let null_as_empty = |v: Value| {
        if v.is_null() {
            Value::Object(Default::default())
        } else {
            v
        }
    };
    for (section, a, b) in [
        ("requested", json(&old.requested), json(&new.requested)),
        ("granted", json(&old.granted), json(&new.granted)),
        ("limits", json(&old.limits), json(&new.limits)),
    ] {
        out.extend(prefixed(
            section,
            json_changes(&null_as_empty(a), &null_as_empty(b)),
        ));
    }
    if old.sha256 != new.sha256 {
        out.push(Change {
            what: "component sha256".into(),
            before: Some(old.sha256.clone()),
            after: Some(new.sha256.clone()),
            grows: false,
        });
    }
    out
}

/// The diff as text for people.
pub fn render(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "no changes\n".into();
    }
    let mut s: String = changes.iter().map(|c| format!("{c}\n")).collect();
    let grew = changes.iter().filter(|c| c.grows).count();
    s.push_str(&format!(
        "\n{} change(s), {grew} growing what the plugin can do ('+')\n",
        changes.len()
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn grows(old: Value, new: Value) -> Vec<(String, bool)> {
        json_changes(&old, &new)
            .into_iter()
            .map(|c| (c.to_string(), c.grows))
            .collect()
    }

    #[test]
    fn added_elements_and_capabilities_grow_removed_ones_do_not() {
        let c = grows(
            json!({"k8s": {"operations": ["read"]}}),
            json!({"k8s": {"operations": ["read", "delete-pods"]}, "http": {}}),
        );
        assert!(
            c.contains(&("+ k8s.operations: added delete-pods".into(), true)),
            "{c:?}"
        );
        assert!(
            c.contains(&("+ http: added (present)".into(), true)),
            "{c:?}"
        );
        let c = grows(
            json!({"k8s": {"operations": ["read", "scale"]}}),
            json!({"k8s": {"operations": ["read"]}}),
        );
        assert_eq!(c, [("- k8s.operations: removed scale".to_string(), false)]);
    }

    #[test]
    fn numbers_grow_upwards_and_any_is_wider_than_a_list() {
        let c = grows(json!({"memory_mib": 32}), json!({"memory_mib": 64}));
        assert_eq!(c, [("+ memory_mib: 32 -> 64".to_string(), true)]);
        let c = grows(json!({"memory_mib": 64}), json!({"memory_mib": 32}));
        assert_eq!(c, [("- memory_mib: 64 -> 32".to_string(), false)]);
        let c = grows(
            json!({"namespaces": ["payments"]}),
            json!({"namespaces": null}),
        );
        assert!(c.iter().all(|(_, g)| *g) && !c.is_empty(), "{c:?}");
        let c = grows(
            json!({"namespaces": null}),
            json!({"namespaces": ["payments"]}),
        );
        assert!(c.iter().all(|(_, g)| !*g), "{c:?}");
    }

    #[test]
    fn identical_documents_have_no_changes() {
        let v = json!({"k8s": {"operations": ["read"], "max_replicas": 10}});
        assert!(json_changes(&v, &v).is_empty());
    }
}

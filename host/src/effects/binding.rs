//! Plan-bound execution: while `execute` runs, a mutating capability call
//! gets through only if it matches an effect of the plan the guardrails
//! judged (and a human approved, where one had to).
//!
//! Each check is a plain function of the planned effects and the call's typed
//! arguments. A mismatch is a [`Denied`] starting with "not in the approved
//! plan", which the capability records as [`Verdict::Unplanned`]
//! (`capability/mod.rs`) and the pipeline turns into a fault of the action.
//!
//! A plan with an [`Effect::Other`] cannot be matched call by call. Such a
//! plan is *open*: calls within the grant get through, recorded as such, and
//! the guardrails never let an open plan run without a human's approval.
//!
//! [`Verdict::Unplanned`]: crate::capability::Verdict::Unplanned

use super::{Effect, ObjectRef};
use crate::capability::Denied;

/// The effects `execute` is bound to.
#[derive(Debug, Clone, Default)]
pub struct PlanBinding {
    effects: Vec<Effect>,
    open: bool,
}

fn unplanned(what: String) -> Denied {
    Denied(format!("not in the approved plan: {what}"))
}

impl PlanBinding {
    pub fn new(effects: Vec<Effect>) -> Self {
        let open = effects.iter().any(|e| matches!(e, Effect::Other { .. }));
        PlanBinding { effects, open }
    }

    /// Whether calls are let through within the grant (an `other` effect).
    pub fn is_open(&self) -> bool {
        self.open
    }

    pub fn effects(&self) -> &[Effect] {
        &self.effects
    }

    fn find<T>(&self, pick: impl Fn(&Effect) -> Option<T>) -> Option<T> {
        self.effects.iter().find_map(pick)
    }

    pub fn scale(&self, namespace: &str, name: &str, replicas: u32) -> Result<(), Denied> {
        if self.open {
            return Ok(());
        }
        let want = ObjectRef::deployment(namespace, name);
        let planned: Vec<u32> = self
            .effects
            .iter()
            .filter_map(|e| match e {
                Effect::Scale { target, to, .. } if *target == want => Some(*to),
                _ => None,
            })
            .collect();
        if planned.contains(&replicas) {
            Ok(())
        } else if planned.is_empty() {
            Err(unplanned(format!("scale {want} to {replicas}")))
        } else {
            Err(unplanned(format!(
                "scale {want} to {replicas} (the plan scales it to {})",
                planned
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" or ")
            )))
        }
    }

    /// Returns the revision to roll back to: the planned one when the call
    /// leaves it to the cluster ("the previous revision"), so what runs is
    /// what was judged even if a rollout happened in between.
    pub fn rollback(
        &self,
        namespace: &str,
        name: &str,
        to_revision: Option<u64>,
    ) -> Result<Option<u64>, Denied> {
        if self.open {
            return Ok(to_revision);
        }
        let want = ObjectRef::deployment(namespace, name);
        let planned = self.find(|e| match e {
            Effect::Rollback {
                target,
                to_revision,
                ..
            } if *target == want => Some(*to_revision),
            _ => None,
        });
        match (planned, to_revision) {
            (Some(p), None) => Ok(Some(p)),
            (Some(p), Some(asked)) if p == asked => Ok(Some(p)),
            (Some(p), Some(asked)) => Err(unplanned(format!(
                "roll back {want} to revision {asked} (the plan rolls back to {p})"
            ))),
            (None, _) => Err(unplanned(format!("roll back {want}"))),
        }
    }

    pub fn delete_pods(&self, namespace: &str, names: &[String]) -> Result<(), Denied> {
        if self.open {
            return Ok(());
        }
        let planned: Vec<&String> = self
            .effects
            .iter()
            .filter_map(|e| match e {
                Effect::RestartPods { target, pods } if target.namespace == namespace => Some(pods),
                _ => None,
            })
            .flatten()
            .collect();
        let outside: Vec<&str> = names
            .iter()
            .filter(|n| !planned.contains(n))
            .map(String::as_str)
            .collect();
        if outside.is_empty() {
            Ok(())
        } else {
            Err(unplanned(format!(
                "delete pod(s) {} in {namespace}",
                outside.join(", ")
            )))
        }
    }

    pub fn annotate(&self, object: &ObjectRef, keys: &[String]) -> Result<(), Denied> {
        if self.open {
            return Ok(());
        }
        let planned = self.find(|e| match e {
            Effect::Annotate { target, keys } if target == object => Some(keys.clone()),
            _ => None,
        });
        let Some(planned) = planned else {
            return Err(unplanned(format!("annotate {object}")));
        };
        let extra: Vec<&str> = keys
            .iter()
            .filter(|k| !planned.contains(k))
            .map(String::as_str)
            .collect();
        if extra.is_empty() {
            Ok(())
        } else {
            Err(unplanned(format!(
                "annotation key(s) {} on {object}",
                extra.join(", ")
            )))
        }
    }

    pub fn renew_certificate(&self, namespace: &str, name: &str) -> Result<(), Denied> {
        if self.open {
            return Ok(());
        }
        let want = ObjectRef {
            kind: "Certificate".into(),
            namespace: namespace.into(),
            name: name.into(),
        };
        let planned = self.effects.iter().any(
            |e| matches!(e, Effect::CertificateRenewal { certificate } if *certificate == want),
        );
        if planned {
            Ok(())
        } else {
            Err(unplanned(format!("renew {want}")))
        }
    }

    /// A request with a method that may change something (anything but GET,
    /// HEAD, OPTIONS) must match a planned `http-request`: same method, same
    /// origin, and the same path — or one under a planned `prefix/*`, or any
    /// path for a planned `*`.
    pub fn http_request(&self, method: &str, origin: &str, path: &str) -> Result<(), Denied> {
        if self.open {
            return Ok(());
        }
        let origin = normalize_origin(origin);
        let planned = self.effects.iter().any(|e| match e {
            Effect::HttpRequest {
                method: m,
                origin: o,
                path: p,
            } => {
                m.eq_ignore_ascii_case(method)
                    && normalize_origin(o) == origin
                    && path_matches(p, path)
            }
            _ => false,
        });
        if planned {
            Ok(())
        } else {
            Err(unplanned(format!("{method} {origin}{path}")))
        }
    }
}

fn path_matches(planned: &str, actual: &str) -> bool {
    if planned == "*" {
        return true;
    }
    match planned.strip_suffix("/*") {
        Some(prefix) => actual
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/')),
        None => planned == actual,
    }
}

/// `scheme://host[:port]`, lower-case, default ports dropped.
pub fn normalize_origin(origin: &str) -> String {
    let lower = origin.trim_end_matches('/').to_ascii_lowercase();
    lower
        .strip_suffix(":443")
        .filter(|_| lower.starts_with("https://"))
        .or_else(|| {
            lower
                .strip_suffix(":80")
                .filter(|_| lower.starts_with("http://"))
        })
        .map(str::to_string)
        .unwrap_or(lower)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep() -> ObjectRef {
        ObjectRef::deployment("payments", "payment-api")
    }

    fn bound(effects: Vec<Effect>) -> PlanBinding {
        PlanBinding::new(effects)
    }

    #[test]
    fn scale_must_match_target_and_value_exactly() {
        let b = bound(vec![Effect::Scale {
            target: dep(),
            from: 3,
            to: 4,
        }]);
        assert!(b.scale("payments", "payment-api", 4).is_ok());
        let e = b.scale("payments", "payment-api", 9).err().map(|d| d.0);
        assert!(e.is_some_and(|r| r.contains("not in the approved plan") && r.contains("to 4")));
        assert!(b.scale("payments", "ledger", 4).is_err());
        assert!(b.scale("checkout", "payment-api", 4).is_err());
    }

    #[test]
    fn rollback_resolves_to_the_planned_revision() {
        let b = bound(vec![Effect::Rollback {
            target: dep(),
            from_revision: 2,
            to_revision: 1,
        }]);
        assert_eq!(
            b.rollback("payments", "payment-api", None).ok(),
            Some(Some(1))
        );
        assert_eq!(
            b.rollback("payments", "payment-api", Some(1)).ok(),
            Some(Some(1))
        );
        assert!(b.rollback("payments", "payment-api", Some(7)).is_err());
        assert!(b.rollback("payments", "ledger", None).is_err());
    }

    #[test]
    fn no_pod_outside_the_planned_set() {
        let b = bound(vec![Effect::RestartPods {
            target: dep(),
            pods: vec!["a".into(), "b".into()],
        }]);
        assert!(b.delete_pods("payments", &["a".into()]).is_ok());
        assert!(
            b.delete_pods("payments", &["a".into(), "c".into()])
                .is_err()
        );
        assert!(b.delete_pods("checkout", &["a".into()]).is_err());
    }

    #[test]
    fn annotate_only_planned_keys_on_the_planned_object() {
        let b = bound(vec![Effect::Annotate {
            target: dep(),
            keys: vec!["a/b".into()],
        }]);
        assert!(b.annotate(&dep(), &["a/b".into()]).is_ok());
        assert!(b.annotate(&dep(), &["a/b".into(), "x".into()]).is_err());
        let other = ObjectRef::deployment("payments", "ledger");
        assert!(b.annotate(&other, &["a/b".into()]).is_err());
    }

    #[test]
    fn http_requests_match_method_origin_and_path() {
        let b = bound(vec![
            Effect::HttpRequest {
                method: "POST".into(),
                origin: "https://Route53.example:443".into(),
                path: "/2013-04-01/hostedzone/Z1/rrset".into(),
            },
            Effect::HttpRequest {
                method: "POST".into(),
                origin: "http://127.0.0.1:9000".into(),
                path: "/services/*".into(),
            },
        ]);
        assert!(
            b.http_request(
                "POST",
                "https://route53.example",
                "/2013-04-01/hostedzone/Z1/rrset"
            )
            .is_ok()
        );
        assert!(
            b.http_request(
                "POST",
                "https://route53.example",
                "/2013-04-01/hostedzone/Z2/rrset"
            )
            .is_err()
        );
        assert!(
            b.http_request(
                "DELETE",
                "https://route53.example",
                "/2013-04-01/hostedzone/Z1/rrset"
            )
            .is_err()
        );
        assert!(
            b.http_request("POST", "http://127.0.0.1:9000", "/services/T/B/x")
                .is_ok()
        );
        assert!(
            b.http_request("POST", "http://127.0.0.1:9000", "/servicesX")
                .is_err()
        );
        assert!(
            b.http_request("POST", "http://127.0.0.1:9001", "/services/T")
                .is_err()
        );
    }

    #[test]
    fn an_empty_plan_binds_everything_and_other_opens_it() {
        let empty = bound(vec![]);
        assert!(empty.scale("payments", "payment-api", 3).is_err());
        assert!(empty.renew_certificate("payments", "tls").is_err());
        let open = bound(vec![Effect::Other {
            description: "0.1.0 change".into(),
        }]);
        assert!(open.is_open());
        assert!(open.scale("payments", "payment-api", 3).is_ok());
    }
}

//! Alerts into incidents, with Alertmanager's semantics as the reference:
//! alerts dedup by fingerprint, group by a configurable label set, and a new
//! group waits `group_wait` for its siblings before it becomes an incident.
//! Later alerts join the open incident; when every alert of a group has
//! resolved, the incident resolves.
//!
//! Alerts that name a shared cause — a `node` label by default
//! (`correlate_by`) — group by that value alone, whatever their namespace
//! or alert name: a node going down is one incident, not one per namespace.
//!
//! Memory is bounded during a storm: at most `max_groups` groups and
//! `max_alerts_per_group` alerts kept per group. Nothing is dropped
//! silently: alerts beyond a group's cap are counted on the group, and new
//! groups beyond `max_groups` go to one overflow group, counted too.

use crate::intake::{Alert, Status};
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct GroupingConfig {
    #[serde(default = "default_group_by")]
    pub group_by: Vec<String>,
    /// Labels naming a shared cause; the first an alert carries is its
    /// group key.
    #[serde(default = "default_correlate_by")]
    pub correlate_by: Vec<String>,
    #[serde(default = "default_group_wait_ms")]
    pub group_wait_ms: u64,
    #[serde(default = "default_max_groups")]
    pub max_groups: usize,
    #[serde(default = "default_max_alerts")]
    pub max_alerts_per_group: usize,
}

fn default_group_by() -> Vec<String> {
    vec!["alertname".into(), "namespace".into(), "service".into()]
}
fn default_correlate_by() -> Vec<String> {
    vec!["node".into()]
}
fn default_group_wait_ms() -> u64 {
    30_000
}
fn default_max_groups() -> usize {
    10_000
}
fn default_max_alerts() -> usize {
    1_000
}

impl Default for GroupingConfig {
    fn default() -> Self {
        GroupingConfig {
            group_by: default_group_by(),
            correlate_by: default_correlate_by(),
            group_wait_ms: default_group_wait_ms(),
            max_groups: default_max_groups(),
            max_alerts_per_group: default_max_alerts(),
        }
    }
}

/// The label values that identify a group, in `group_by` order.
pub type GroupKey = Vec<(String, String)>;

/// The key of the group that takes new groups once `max_groups` is reached.
pub const OVERFLOW: &str = "runwarden_overflow";

#[derive(Debug, Clone)]
pub struct Group {
    pub key: GroupKey,
    pub alerts: BTreeMap<String, Alert>,
    /// Every alert delivery, duplicates included.
    pub received: u64,
    /// Distinct alerts not kept because the group was full.
    pub not_kept: u64,
    pub first_seen_ms: i64,
    /// Set once the group has become an incident.
    pub incident: Option<String>,
    /// The incident this group's previous firing became (a recurrence).
    pub previous: Option<String>,
}

impl Group {
    pub fn all_resolved(&self) -> bool {
        !self.alerts.is_empty() && self.alerts.values().all(|a| a.status == Status::Resolved)
    }
}

/// What happened to one alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ingested {
    /// The first alert of a new group; it waits for `group_wait`.
    NewGroup,
    /// Joined a group still waiting.
    Waiting,
    /// Joined, or updated an alert of, a group that is already an incident.
    Incident { id: String, resolved: bool },
    /// Went to the overflow group because `max_groups` was reached.
    Overflow,
}

/// Counters a storm report and `/metrics` read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    pub received: u64,
    pub duplicates: u64,
    pub overflowed: u64,
    pub not_kept: u64,
}

pub struct Grouper {
    config: GroupingConfig,
    groups: HashMap<GroupKey, Group>,
    /// The incident each recently closed group became (at most
    /// `max_groups`, oldest forgotten first): a later firing of the group
    /// opens a new incident linked to it as a recurrence.
    ended: HashMap<GroupKey, String>,
    ended_order: std::collections::VecDeque<GroupKey>,
    pub counters: Counters,
}

impl Grouper {
    pub fn new(config: GroupingConfig) -> Self {
        Grouper {
            config,
            groups: HashMap::new(),
            ended: HashMap::new(),
            ended_order: std::collections::VecDeque::new(),
            counters: Counters::default(),
        }
    }

    pub fn key_of(&self, alert: &Alert) -> GroupKey {
        if let Some((label, value)) = self.config.correlate_by.iter().find_map(|l| {
            alert
                .labels
                .get(l)
                .filter(|v| !v.is_empty())
                .map(|v| (l, v))
        }) {
            return vec![(format!("shared {label}"), value.clone())];
        }
        self.config
            .group_by
            .iter()
            .map(|l| (l.clone(), alert.labels.get(l).cloned().unwrap_or_default()))
            .collect()
    }

    pub fn groups(&self) -> impl Iterator<Item = &Group> {
        self.groups.values()
    }

    /// Files one alert at time `now_ms`.
    pub fn ingest(&mut self, alert: Alert, now_ms: i64) -> Ingested {
        self.counters.received += 1;
        let mut key = self.key_of(&alert);
        let mut overflowed = false;
        if !self.groups.contains_key(&key) && self.groups.len() >= self.config.max_groups {
            key = vec![(OVERFLOW.to_string(), "true".to_string())];
            overflowed = true;
            self.counters.overflowed += 1;
        }
        let is_new = !self.groups.contains_key(&key);
        let previous = if is_new {
            let previous = self.ended.remove(&key);
            if previous.is_some() {
                self.ended_order.retain(|k| k != &key);
            }
            previous
        } else {
            None
        };
        let max_alerts = self.config.max_alerts_per_group;
        let group = self.groups.entry(key.clone()).or_insert_with(|| Group {
            key,
            alerts: BTreeMap::new(),
            received: 0,
            not_kept: 0,
            first_seen_ms: now_ms,
            incident: None,
            previous,
        });
        group.received += 1;
        let room = group.alerts.len() < max_alerts;
        match group.alerts.get_mut(&alert.fingerprint) {
            Some(existing) => {
                self.counters.duplicates += 1;
                existing.status = alert.status;
                existing.ends_at = alert.ends_at;
                existing.annotations = alert.annotations;
            }
            None if room => {
                group.alerts.insert(alert.fingerprint.clone(), alert);
            }
            None => {
                group.not_kept += 1;
                self.counters.not_kept += 1;
            }
        }
        if overflowed {
            return Ingested::Overflow;
        }
        match &group.incident {
            Some(id) => Ingested::Incident {
                id: id.clone(),
                resolved: group.all_resolved(),
            },
            None if is_new => Ingested::NewGroup,
            None => Ingested::Waiting,
        }
    }

    /// Groups whose `group_wait` has passed and that are not incidents yet.
    /// The caller opens an incident for each and calls [`Grouper::opened`].
    pub fn due(&self, now_ms: i64) -> Vec<GroupKey> {
        let wait = i64::try_from(self.config.group_wait_ms).unwrap_or(i64::MAX);
        let mut keys: Vec<GroupKey> = self
            .groups
            .values()
            .filter(|g| g.incident.is_none() && now_ms.saturating_sub(g.first_seen_ms) >= wait)
            .map(|g| g.key.clone())
            .collect();
        keys.sort();
        keys
    }

    pub fn group(&self, key: &GroupKey) -> Option<&Group> {
        self.groups.get(key)
    }

    /// Records that a group became incident `id`.
    pub fn opened(&mut self, key: &GroupKey, id: &str) {
        if let Some(g) = self.groups.get_mut(key) {
            g.incident = Some(id.to_string());
        }
    }

    /// Forgets a group whose incident is closed, freeing its slot.
    /// Links a new group to the incident its previous firing became.
    pub fn recurs(&mut self, key: &GroupKey, previous: &str) {
        if let Some(g) = self.groups.get_mut(key) {
            g.previous = Some(previous.to_string());
        }
    }

    pub fn close(&mut self, key: &GroupKey) {
        let Some(incident) = self.groups.remove(key).and_then(|g| g.incident) else {
            return;
        };
        if self.ended.insert(key.clone(), incident).is_none() {
            self.ended_order.push_back(key.clone());
        }
        while self.ended.len() > self.config.max_groups {
            match self.ended_order.pop_front() {
                Some(old) => {
                    self.ended.remove(&old);
                }
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intake::Sender;

    fn alert(name: &str, service: &str, fp: &str, status: Status) -> Alert {
        let mut labels = BTreeMap::new();
        labels.insert("alertname".to_string(), name.to_string());
        labels.insert("service".to_string(), service.to_string());
        Alert {
            sender: Sender::Alertmanager,
            name: name.into(),
            status,
            fingerprint: fp.into(),
            labels,
            annotations: BTreeMap::new(),
            starts_at: chrono::DateTime::from_timestamp_millis(0).unwrap_or_default(),
            ends_at: None,
            generator_url: None,
        }
    }

    #[test]
    fn group_wait_collects_siblings_before_the_incident_opens() {
        let mut g = Grouper::new(GroupingConfig::default());
        assert_eq!(
            g.ingest(alert("HighErrorRate", "pay", "a", Status::Firing), 0),
            Ingested::NewGroup
        );
        assert_eq!(
            g.ingest(alert("HighErrorRate", "pay", "b", Status::Firing), 10_000),
            Ingested::Waiting
        );
        assert!(g.due(29_999).is_empty());
        let due = g.due(30_000);
        assert_eq!(due.len(), 1);
        assert_eq!(g.group(&due[0]).map(|x| x.alerts.len()), Some(2));
        g.opened(&due[0], "INC-1");
        assert!(g.due(60_000).is_empty(), "an opened group is not due again");
        assert_eq!(
            g.ingest(alert("HighErrorRate", "pay", "c", Status::Firing), 70_000),
            Ingested::Incident {
                id: "INC-1".into(),
                resolved: false
            }
        );
    }

    #[test]
    fn duplicates_update_and_resolution_resolves_the_incident() {
        let mut g = Grouper::new(GroupingConfig::default());
        g.ingest(alert("X", "s", "a", Status::Firing), 0);
        g.ingest(alert("X", "s", "a", Status::Firing), 1);
        let key = g.due(30_000).remove(0);
        g.opened(&key, "INC-9");
        assert_eq!(g.counters.duplicates, 1);
        assert_eq!(
            g.ingest(alert("X", "s", "a", Status::Resolved), 40_000),
            Ingested::Incident {
                id: "INC-9".into(),
                resolved: true
            }
        );
    }

    #[test]
    fn alerts_naming_one_node_are_one_group_across_namespaces_and_names() {
        let mut g = Grouper::new(GroupingConfig::default());
        for (i, (name, ns)) in [
            ("KubePodNotReady", "payments"),
            ("KubePodNotReady", "checkout"),
            ("NodeNotReady", ""),
        ]
        .iter()
        .enumerate()
        {
            let mut a = alert(name, "svc", &format!("n{i}"), Status::Firing);
            a.labels.insert("namespace".into(), ns.to_string());
            a.labels.insert("node".into(), "worker-3".into());
            g.ingest(a, 0);
        }
        let mut other = alert("KubePodNotReady", "svc", "x", Status::Firing);
        other.labels.insert("node".into(), "worker-4".into());
        g.ingest(other, 0);
        let due = g.due(30_000);
        assert_eq!(due.len(), 2, "{due:?}");
        let sizes: Vec<usize> = due
            .iter()
            .filter_map(|k| g.group(k))
            .map(|x| x.alerts.len())
            .collect();
        assert!(sizes.contains(&3), "{sizes:?}");
    }

    #[test]
    fn group_memory_stays_bounded_under_long_churn() {
        // 200,000 groups fire, become incidents, resolve and are freed, a
        // thousand at a time, while one long-lived group stays open.
        let mut g = Grouper::new(GroupingConfig {
            max_groups: 2_000,
            ..GroupingConfig::default()
        });
        g.ingest(alert("Steady", "core", "steady", Status::Firing), 0);
        let mut now = 0;
        let mut most = 0;
        for round in 0..200 {
            for i in 0..1_000 {
                g.ingest(
                    alert(
                        "Churn",
                        &format!("svc{round}-{i}"),
                        &format!("f{round}-{i}"),
                        Status::Firing,
                    ),
                    now,
                );
            }
            now += 30_000;
            for (n, key) in g.due(now).into_iter().enumerate() {
                g.opened(&key, &format!("INC-{round}-{n}"));
            }
            most = most.max(g.groups().count());
            for i in 0..1_000 {
                let a = alert(
                    "Churn",
                    &format!("svc{round}-{i}"),
                    &format!("f{round}-{i}"),
                    Status::Resolved,
                );
                let key = g.key_of(&a);
                if let Ingested::Incident { resolved: true, .. } = g.ingest(a, now) {
                    g.close(&key);
                }
            }
        }
        assert_eq!(g.groups().count(), 1, "only the open group is remembered");
        assert!(most <= 1_001, "at most one round's groups at once: {most}");
        assert!(
            g.ended.len() <= 2_000 && g.ended_order.len() <= 2_000,
            "ended groups remembered within max_groups: {} / {}",
            g.ended.len(),
            g.ended_order.len()
        );
        assert_eq!(
            g.counters.overflowed, 0,
            "freed slots are reused: no overflow"
        );
    }

    /// A group whose alerts all resolved is freed; its next firing is a
    /// new group that remembers the incident it was (a recurrence), and a
    /// group that flaps does not grow the memory.
    #[test]
    fn a_group_that_fires_again_after_resolving_links_to_its_last_incident() {
        let mut g = Grouper::new(GroupingConfig::default());
        for cycle in 0..50 {
            let firing = alert("X", "s", "a", Status::Firing);
            let key = g.key_of(&firing);
            g.ingest(firing, cycle * 100_000);
            let expected = (cycle > 0).then(|| format!("INC-{}", cycle - 1));
            assert_eq!(g.group(&key).and_then(|x| x.previous.clone()), expected);
            g.opened(&key, &format!("INC-{cycle}"));
            if let Ingested::Incident { resolved: true, .. } =
                g.ingest(alert("X", "s", "a", Status::Resolved), cycle * 100_000 + 1)
            {
                g.close(&key);
            }
        }
        assert_eq!((g.ended.len(), g.ended_order.len()), (1, 1));
        // A different group is not linked to it.
        g.ingest(alert("Y", "s", "b", Status::Firing), 0);
        let other = g.key_of(&alert("Y", "s", "b", Status::Firing));
        assert!(g.group(&other).is_some_and(|x| x.previous.is_none()));
    }

    #[test]
    fn different_label_values_make_different_groups() {
        let mut g = Grouper::new(GroupingConfig::default());
        g.ingest(alert("X", "s1", "a", Status::Firing), 0);
        g.ingest(alert("X", "s2", "b", Status::Firing), 0);
        assert_eq!(g.due(30_000).len(), 2);
    }

    #[test]
    fn a_storm_becomes_a_handful_of_incidents_with_bounded_memory_and_nothing_lost() {
        let config = GroupingConfig {
            max_groups: 50,
            max_alerts_per_group: 100,
            ..GroupingConfig::default()
        };
        let mut g = Grouper::new(config);
        let mut overflowed = 0;
        for i in 0..50_000u32 {
            // 5 services firing, plus a long tail of one-off alert names.
            let (name, service) = if i % 10 == 0 {
                (format!("Tail{i}"), "misc".to_string())
            } else {
                ("HighLatency".to_string(), format!("svc{}", i % 5))
            };
            if g.ingest(alert(&name, &service, &format!("fp{i}"), Status::Firing), 0)
                == Ingested::Overflow
            {
                overflowed += 1;
            }
        }
        let groups: Vec<&Group> = g.groups().collect();
        assert!(groups.len() <= 51, "{} groups", groups.len());
        assert!(groups.iter().all(|x| x.alerts.len() <= 100));
        let c = g.counters;
        assert_eq!(c.received, 50_000);
        assert_eq!(c.overflowed, overflowed);
        let accounted: u64 = groups.iter().map(|x| x.received).sum();
        assert_eq!(accounted, 50_000, "every alert is counted in some group");
        let kept: u64 = groups.iter().map(|x| x.alerts.len() as u64).sum();
        assert_eq!(kept + c.not_kept + c.duplicates, 50_000);
    }
}

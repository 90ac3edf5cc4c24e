//! The election loop, after client-go's leaderelection: create the Lease if
//! there is none, renew it while we hold it, take it over once its holder
//! has not renewed for a whole lease duration.
//!
//! Expiry is judged on *our* clock: how long the Lease has stayed unchanged
//! since we first saw it that way, never the holder's `renewTime` (clocks
//! differ between nodes). Every write carries the version read, so of two
//! replicas racing for an expired Lease exactly one wins.

use super::Leadership;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The Lease as read from the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRecord {
    pub holder: Option<String>,
    pub duration_s: u32,
    /// Milliseconds since the epoch, as the holder wrote them (informative).
    pub acquired_ms: Option<i64>,
    pub renewed_ms: Option<i64>,
    pub transitions: u32,
    /// The store's version (Kubernetes `resourceVersion`): writes are
    /// conditional on it.
    pub version: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Someone else wrote the Lease since we read it: we lost a race.
    #[error("lease changed since it was read")]
    Conflict,
    #[error("lease store unavailable: {0}")]
    Unavailable(String),
}

/// Where Leases live: the Kubernetes API, or the simulated cluster.
#[async_trait::async_trait]
pub trait LeaseStore: Send + Sync {
    async fn get(&self) -> Result<Option<LeaseRecord>, LeaseError>;
    /// Creates the Lease; `Conflict` if it exists.
    async fn create(&self, lease: &LeaseRecord) -> Result<LeaseRecord, LeaseError>;
    /// Replaces the Lease if its version is still `lease.version`.
    async fn replace(&self, lease: &LeaseRecord) -> Result<LeaseRecord, LeaseError>;
}

/// What to do after reading the Lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Create,
    Renew,
    TakeOver,
    Standby { holder: String },
}

/// The decision, as a plain function: `unchanged_for` is how long the
/// Lease has looked exactly like this to us.
pub fn next_step(lease: Option<&LeaseRecord>, me: &str, unchanged_for: Duration) -> Step {
    let Some(lease) = lease else {
        return Step::Create;
    };
    match lease.holder.as_deref() {
        Some(h) if h == me => Step::Renew,
        None | Some("") => Step::TakeOver,
        Some(_) if unchanged_for >= Duration::from_secs(u64::from(lease.duration_s)) => {
            Step::TakeOver
        }
        Some(h) => Step::Standby { holder: h.into() },
    }
}

#[derive(Debug, Clone)]
pub struct ElectorConfig {
    pub identity: String,
    pub lease_duration: Duration,
    /// A leader that cannot renew for this long steps down.
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl ElectorConfig {
    /// client-go's defaults: 15 s lease, 10 s renew deadline, 2 s retry.
    pub fn new(identity: impl Into<String>) -> Self {
        ElectorConfig {
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

pub struct Elector {
    store: Arc<dyn LeaseStore>,
    config: ElectorConfig,
    /// The Lease as last seen, and since when it has looked like that.
    observed: Option<(LeaseRecord, Instant)>,
    last_renewed: Option<Instant>,
}

/// What one round did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Round {
    Leading,
    Standby {
        holder: String,
    },
    /// We led and could not renew within the deadline.
    SteppedDown,
    /// The store could not be read or written; nothing changed.
    Error(String),
}

impl Elector {
    pub fn new(store: Arc<dyn LeaseStore>, config: ElectorConfig) -> Self {
        Elector {
            store,
            config,
            observed: None,
            last_renewed: None,
        }
    }

    fn record(&self, previous: Option<&LeaseRecord>) -> LeaseRecord {
        let now = crate::pipeline::now_ms();
        let taking = previous.and_then(|p| p.holder.as_deref()) != Some(&self.config.identity);
        LeaseRecord {
            holder: Some(self.config.identity.clone()),
            duration_s: u32::try_from(self.config.lease_duration.as_secs()).unwrap_or(u32::MAX),
            acquired_ms: if taking {
                Some(now)
            } else {
                previous.and_then(|p| p.acquired_ms)
            },
            renewed_ms: Some(now),
            transitions: match previous {
                Some(p) if taking && p.holder.is_some() => p.transitions.saturating_add(1),
                Some(p) => p.transitions,
                None => 0,
            },
            version: previous.map(|p| p.version.clone()).unwrap_or_default(),
        }
    }

    /// Reads the Lease, acts on it, and updates `leadership`.
    pub async fn round(&mut self, leadership: &Leadership) -> Round {
        let round = self.try_round().await;
        let leading = matches!(round, Round::Leading);
        let was = leadership.set(leading);
        if was && !leading {
            if let Round::Error(e) = &round {
                // A leader that cannot reach the store keeps leading until
                // its renew deadline passes: the Lease is still ours.
                if self
                    .last_renewed
                    .is_some_and(|t| t.elapsed() < self.config.renew_deadline)
                {
                    leadership.set(true);
                    tracing::warn!("lease renewal failed, still within the deadline: {e}");
                    return Round::Leading;
                }
            }
            tracing::warn!(identity = %self.config.identity, "lost the lease: {round:?}");
            return Round::SteppedDown;
        }
        if leading && !was {
            tracing::info!(identity = %self.config.identity, "acquired the lease");
        }
        round
    }

    async fn try_round(&mut self) -> Round {
        let current = match self.store.get().await {
            Ok(c) => c,
            Err(e) => return Round::Error(e.to_string()),
        };
        let unchanged_for = match (&self.observed, &current) {
            (Some((seen, since)), Some(now)) if seen == now => since.elapsed(),
            _ => {
                self.observed = current.clone().map(|c| (c, Instant::now()));
                Duration::ZERO
            }
        };
        let written = match next_step(current.as_ref(), &self.config.identity, unchanged_for) {
            Step::Standby { holder } => return Round::Standby { holder },
            Step::Create => self.store.create(&self.record(None)).await,
            Step::Renew | Step::TakeOver => {
                self.store.replace(&self.record(current.as_ref())).await
            }
        };
        match written {
            Ok(lease) => {
                self.observed = Some((lease, Instant::now()));
                self.last_renewed = Some(Instant::now());
                Round::Leading
            }
            Err(LeaseError::Conflict) => Round::Standby {
                holder: "another replica (lost the race)".into(),
            },
            Err(e) => Round::Error(e.to_string()),
        }
    }

    /// Runs rounds every `retry_period` until this replica steps down after
    /// having led; returns then (the caller exits, so no action of ours
    /// runs beside the new leader's).
    pub async fn run(mut self, leadership: Leadership) {
        let mut tick = tokio::time::interval(self.config.retry_period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if self.round(&leadership).await == Round::SteppedDown {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held_by(holder: &str) -> LeaseRecord {
        LeaseRecord {
            holder: Some(holder.into()),
            duration_s: 15,
            acquired_ms: Some(0),
            renewed_ms: Some(0),
            transitions: 0,
            version: "1".into(),
        }
    }

    #[test]
    fn no_lease_is_created() {
        assert_eq!(next_step(None, "a", Duration::ZERO), Step::Create);
    }

    #[test]
    fn our_lease_is_renewed() {
        assert_eq!(
            next_step(Some(&held_by("a")), "a", Duration::from_secs(99)),
            Step::Renew
        );
    }

    #[test]
    fn a_live_lease_of_another_is_left_alone() {
        assert_eq!(
            next_step(Some(&held_by("b")), "a", Duration::from_secs(14)),
            Step::Standby { holder: "b".into() }
        );
    }

    #[test]
    fn a_lease_unchanged_for_its_duration_is_taken_over() {
        assert_eq!(
            next_step(Some(&held_by("b")), "a", Duration::from_secs(15)),
            Step::TakeOver
        );
    }

    #[test]
    fn a_released_lease_is_taken_at_once() {
        let mut lease = held_by("b");
        lease.holder = None;
        assert_eq!(next_step(Some(&lease), "a", Duration::ZERO), Step::TakeOver);
    }
}

//! Several replicas, one active: leadership through a Kubernetes Lease.
//!
//! Only the leader turns alerts into incidents and acts; the others keep
//! their plugins loaded and report not-ready, so the Service sends webhooks
//! to the leader alone. When the leader stops renewing (crash, partition,
//! shutdown), another replica takes the Lease once it has expired and
//! becomes ready. Without `--lease` a single replica is always the leader.

pub mod elector;
pub mod kube_lease;
pub mod sim;

pub use elector::{Elector, ElectorConfig};

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Whether this replica leads, as the rest of the process sees it.
#[derive(Debug, Clone)]
pub struct Leadership {
    leading: Arc<AtomicBool>,
    /// `None` for a single replica; else "lease NAMESPACE/NAME as IDENTITY".
    lease: Option<Arc<str>>,
}

impl Leadership {
    /// One replica: always the leader.
    pub fn single() -> Self {
        Leadership {
            leading: Arc::new(AtomicBool::new(true)),
            lease: None,
        }
    }

    /// Elected: not the leader until the elector says so.
    pub fn elected(description: String) -> Self {
        Leadership {
            leading: Arc::new(AtomicBool::new(false)),
            lease: Some(description.into()),
        }
    }

    /// Several replicas elect a leader (rather than one always leading).
    pub fn is_elected(&self) -> bool {
        self.lease.is_some()
    }

    pub fn is_leader(&self) -> bool {
        self.leading.load(Ordering::Acquire)
    }

    pub(crate) fn set(&self, leading: bool) -> bool {
        self.leading.swap(leading, Ordering::AcqRel)
    }

    pub fn describe(&self) -> String {
        let role = if self.is_leader() {
            "leader"
        } else {
            "standby"
        };
        match &self.lease {
            None => "single replica".into(),
            Some(lease) => format!("{role} ({lease})"),
        }
    }
}

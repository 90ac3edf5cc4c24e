//! A Lease held in memory, shared by the replicas of one test or demo the
//! way the API server shares one object: versioned, conditional writes.

use super::elector::{LeaseError, LeaseRecord, LeaseStore};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Debug, Default)]
pub struct SimLease {
    lease: Mutex<Option<LeaseRecord>>,
    next_version: std::sync::atomic::AtomicU64,
    /// While set, every call fails as if the API server were unreachable.
    pub unreachable: AtomicBool,
}

impl SimLease {
    pub fn holder(&self) -> Option<String> {
        self.lease
            .lock()
            .ok()
            .and_then(|l| l.as_ref().and_then(|l| l.holder.clone()))
    }

    pub fn snapshot(&self) -> Option<LeaseRecord> {
        self.lease.lock().ok().and_then(|l| l.clone())
    }

    fn check(&self) -> Result<std::sync::MutexGuard<'_, Option<LeaseRecord>>, LeaseError> {
        if self.unreachable.load(Ordering::Acquire) {
            return Err(LeaseError::Unavailable(
                "simulated API server unreachable".into(),
            ));
        }
        self.lease
            .lock()
            .map_err(|_| LeaseError::Unavailable("lease lock poisoned".into()))
    }

    fn stamp(&self, lease: &LeaseRecord) -> LeaseRecord {
        let v = self.next_version.fetch_add(1, Ordering::AcqRel) + 1;
        LeaseRecord {
            version: v.to_string(),
            ..lease.clone()
        }
    }
}

#[async_trait::async_trait]
impl LeaseStore for SimLease {
    async fn get(&self) -> Result<Option<LeaseRecord>, LeaseError> {
        Ok(self.check()?.clone())
    }

    async fn create(&self, lease: &LeaseRecord) -> Result<LeaseRecord, LeaseError> {
        let mut slot = self.check()?;
        if slot.is_some() {
            return Err(LeaseError::Conflict);
        }
        let stored = self.stamp(lease);
        *slot = Some(stored.clone());
        Ok(stored)
    }

    async fn replace(&self, lease: &LeaseRecord) -> Result<LeaseRecord, LeaseError> {
        let mut slot = self.check()?;
        match slot.as_ref() {
            Some(current) if current.version == lease.version => {
                let stored = self.stamp(lease);
                *slot = Some(stored.clone());
                Ok(stored)
            }
            _ => Err(LeaseError::Conflict),
        }
    }
}

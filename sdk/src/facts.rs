//! Facts a context source states with its evidence, in the shared
//! vocabulary (`runwarden-observe`): the same classification the host
//! applies to a 0.1.0 component's evidence, so a first-party source and
//! the host cannot disagree on what a line or a series means.

use crate::bindings::source::runwarden::plugin::types as wit;
pub use runwarden_observe::{Observed, Resource, Series, log_fact, series_facts};

/// The WIT shape of an observation.
pub fn to_wit(o: Observed) -> wit::Fact {
    match o {
        Observed::DependencyFailure {
            dependency,
            error_class,
            detail,
        } => wit::Fact::DependencyFailure(wit::DependencyFailure {
            dependency,
            error_class,
            detail,
        }),
        Observed::MetricShift {
            signal,
            series,
            baseline,
            current,
            onset_ms,
        } => wit::Fact::MetricShift(wit::MetricShift {
            signal,
            series,
            baseline,
            current,
            onset: onset_ms,
        }),
        Observed::Saturation {
            resource,
            utilisation,
            rising,
            detail,
        } => wit::Fact::Saturation(wit::Saturation {
            resource: match resource {
                Resource::Cpu => wit::ResourceKind::Cpu,
                Resource::Memory => wit::ResourceKind::Memory,
                Resource::Disk => wit::ResourceKind::Disk,
            },
            utilisation,
            rising,
            detail,
        }),
        Observed::LogErrors {
            class,
            count,
            example,
        } => wit::Fact::LogErrors(wit::LogErrors {
            class,
            count,
            example,
        }),
        Observed::EndpointHealth { target, up } => {
            wit::Fact::EndpointHealth(wit::EndpointHealth { target, up })
        }
    }
}

/// The workload the host resolved for the incident (its `runwarden_workload`
/// label), so a source does not report the workload as its own dependency.
pub fn workload_of(alert: &crate::Alert) -> Option<String> {
    alert
        .labels
        .iter()
        .find(|p| p.key == "runwarden_workload")
        .map(|p| p.value.clone())
}

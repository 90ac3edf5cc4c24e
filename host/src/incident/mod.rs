//! Incidents: alerts grouped into something to investigate and fix.

pub mod grouping;

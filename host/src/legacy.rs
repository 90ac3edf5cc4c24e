//! `runwarden:plugin@0.1.0` components, served by the 0.2.0 host.
//!
//! Zed's extension host keeps old extensions working by giving each WIT
//! version its own module that forwards to the latest; this is that module.
//! The 0.1.0 capability interfaces are linked under their own names and
//! every call goes to the same capability code as 0.2.0 (grant checks, plan
//! binding, recording), with records converted on the way in and out.
//!
//! What 0.1.0 cannot say is typed effects: its `change` is free text. Each
//! becomes [`Effect::Other`](crate::effects::Effect::Other), so a 0.1.0 tool's
//! plan is open (not bound call by call) and always waits for a human.

use crate::bindings::v0_1::types as t01;
use crate::bindings::v0_1::{config as config01, k8s as k8s01, log as log01, secrets as secrets01};
use crate::bindings::{config, k8s, log, secrets, types as t02};
use crate::capability::Grants;
use crate::capability::config::PluginConfig;
use crate::capability::k8s::K8sCapability;
use crate::capability::log::LogCapability;
use crate::capability::secrets::SecretsCapability;
use crate::sandbox::state::PluginState;
use wasmtime::component::{HasSelf, Linker};

/// Converts a record of one contract version into the other's.
pub trait Conv<T> {
    fn conv(self) -> T;
}

macro_rules! same {
    ($($t:ty),*) => {$(impl Conv<$t> for $t { fn conv(self) -> $t { self } })*};
}
same!(String, u32, u64, i64, bool);

impl<A: Conv<B>, B> Conv<Vec<B>> for Vec<A> {
    fn conv(self) -> Vec<B> {
        self.into_iter().map(Conv::conv).collect()
    }
}

impl<A: Conv<B>, B> Conv<Option<B>> for Option<A> {
    fn conv(self) -> Option<B> {
        self.map(Conv::conv)
    }
}

impl<A: Conv<B>, B, EA: Conv<EB>, EB> Conv<Result<B, EB>> for Result<A, EA> {
    fn conv(self) -> Result<B, EB> {
        self.map(Conv::conv).map_err(Conv::conv)
    }
}

/// Field-by-field conversion of records with the same fields, both ways.
macro_rules! records {
    ($($a:path => $b:path { $($f:ident),* $(,)? })*) => {$(
        impl Conv<$b> for $a {
            fn conv(self) -> $b {
                use $b as B;
                B { $($f: self.$f.conv()),* }
            }
        }
        impl Conv<$a> for $b {
            fn conv(self) -> $a {
                use $a as A;
                A { $($f: self.$f.conv()),* }
            }
        }
    )*};
}

/// 0.1.0 evidence carries no facts: the host derives them from its body.
impl Conv<t02::Evidence> for t01::Evidence {
    fn conv(self) -> t02::Evidence {
        t02::Evidence {
            kind: self.kind.conv(),
            summary: self.summary,
            body_json: self.body_json,
            observed_from: self.observed_from,
            observed_to: self.observed_to,
            facts: Vec::new(),
        }
    }
}

records! {
    t01::Pair => t02::Pair { key, value }
    t01::Alert => t02::Alert { name, status, fingerprint, labels, annotations, starts_at }
    t01::TimeWindow => t02::TimeWindow { start, end }
    t01::SourceInfo => t02::SourceInfo { name, description, provides }
    t01::ToolSpec => t02::ToolSpec { name, description, parameters_schema, effect, risk, reversible }
    t01::ToolCall => t02::ToolCall { tool, arguments_json }
    k8s01::Deployment => k8s::Deployment { namespace, name, replicas, ready_replicas, revision, images, labels }
    k8s01::Pod => k8s::Pod { namespace, name, deployment, phase, ready, restarts, last_termination_reason, memory_bytes, labels }
    k8s01::Revision => k8s::Revision { revision, images, created_at, change_cause }
    k8s01::Event => k8s::Event { namespace, object_kind, object_name, event_type, reason, message, count, last_seen }
    k8s01::ObjectRef => t02::ObjectRef { kind, namespace, name }
    k8s01::Certificate => k8s::Certificate { namespace, name, secret_name, dns_names, issuer, ready, ready_message, not_after, renewal_time, revision, issuing }
}

/// Enums and variants with the same cases, both ways.
macro_rules! cases {
    ($($a:ident :: $at:ident <=> $b:ident :: $bt:ident { $($case:ident $(($x:ident))?),* $(,)? })*) => {$(
        impl Conv<$b::$bt> for $a::$at {
            fn conv(self) -> $b::$bt {
                match self { $($a::$at::$case $(($x))? => $b::$bt::$case $(($x.conv()))?),* }
            }
        }
        impl Conv<$a::$at> for $b::$bt {
            fn conv(self) -> $a::$at {
                match self { $($b::$bt::$case $(($x))? => $a::$at::$case $(($x.conv()))?),* }
            }
        }
    )*};
}

cases! {
    t01::Error <=> t02::Error { Denied(r), InvalidInput(r), Unavailable(r), Failed(r) }
    t01::AlertStatus <=> t02::AlertStatus { Firing, Resolved }
    t01::EvidenceKind <=> t02::EvidenceKind { MetricSeries, LogLines, ChangeEvent, K8sEvent, Note }
    t01::Effect <=> t02::Effect { Read, Mutate }
    t01::Risk <=> t02::Risk { Low, Medium, High }
    log01::Level <=> log::Level { Debug, Info, Warn, Error }
}

/// A 0.1.0 change is free text: the host can only treat it as `other`.
impl Conv<t02::Change> for t01::Change {
    fn conv(self) -> t02::Change {
        let mut description = format!("{}: {}", self.target, self.description);
        if self.before.is_some() || self.after.is_some() {
            description.push_str(&format!(
                " ({} -> {})",
                self.before.as_deref().unwrap_or("?"),
                self.after.as_deref().unwrap_or("?")
            ));
        }
        t02::Change {
            effect: t02::ChangeEffect::Other(description.clone()),
            description,
        }
    }
}

impl Conv<t02::ActionPlan> for t01::ActionPlan {
    fn conv(self) -> t02::ActionPlan {
        t02::ActionPlan {
            summary: self.summary,
            changes: self.changes.conv(),
        }
    }
}

impl Conv<t02::Outcome> for t01::Outcome {
    fn conv(self) -> t02::Outcome {
        t02::Outcome {
            summary: self.summary,
            changes: self.changes.conv(),
            detail_json: self.detail_json,
        }
    }
}

/// Links the 0.1.0 capability interfaces the grant allows, next to (and
/// forwarding to) the 0.2.0 ones.
pub fn add_to_linker(linker: &mut Linker<PluginState>, grants: &Grants) -> wasmtime::Result<()> {
    t01::add_to_linker::<PluginState, HasSelf<PluginState>>(linker, |s| s)?;
    config01::add_to_linker::<PluginState, HasSelf<_>>(linker, |s| &mut s.config)?;
    if grants.k8s.is_some() {
        k8s01::add_to_linker::<PluginState, HasSelf<_>>(linker, |s| &mut s.k8s)?;
    }
    if grants.secrets.is_some() {
        secrets01::add_to_linker::<PluginState, HasSelf<_>>(linker, |s| &mut s.secrets)?;
    }
    if grants.log.is_some() {
        log01::add_to_linker::<PluginState, HasSelf<_>>(linker, |s| &mut s.log)?;
    }
    Ok(())
}

impl t01::Host for PluginState {}

impl config01::Host for PluginConfig {
    async fn get(&mut self, key: String) -> Option<String> {
        config::Host::get(self, key).await
    }
}

impl secrets01::Host for SecretsCapability {
    async fn get(&mut self, name: String) -> Result<String, t01::Error> {
        secrets::Host::get(self, name).await.conv()
    }
}

impl log01::Host for LogCapability {
    async fn emit(&mut self, level: log01::Level, message: String, fields: Vec<t01::Pair>) {
        log::Host::emit(self, level.conv(), message, fields.conv()).await;
    }
}

impl k8s01::Host for K8sCapability {
    async fn get_deployment(
        &mut self,
        namespace: String,
        name: String,
    ) -> Result<k8s01::Deployment, t01::Error> {
        k8s::Host::get_deployment(self, namespace, name)
            .await
            .conv()
    }
    async fn list_deployments(
        &mut self,
        namespace: String,
    ) -> Result<Vec<k8s01::Deployment>, t01::Error> {
        k8s::Host::list_deployments(self, namespace).await.conv()
    }
    async fn list_pods(
        &mut self,
        namespace: String,
        label_selector: Option<String>,
    ) -> Result<Vec<k8s01::Pod>, t01::Error> {
        k8s::Host::list_pods(self, namespace, label_selector)
            .await
            .conv()
    }
    async fn rollout_history(
        &mut self,
        namespace: String,
        deployment: String,
    ) -> Result<Vec<k8s01::Revision>, t01::Error> {
        k8s::Host::rollout_history(self, namespace, deployment)
            .await
            .conv()
    }
    async fn list_events(
        &mut self,
        namespace: String,
        object_name: Option<String>,
    ) -> Result<Vec<k8s01::Event>, t01::Error> {
        k8s::Host::list_events(self, namespace, object_name)
            .await
            .conv()
    }
    async fn list_certificates(
        &mut self,
        namespace: String,
    ) -> Result<Vec<k8s01::Certificate>, t01::Error> {
        k8s::Host::list_certificates(self, namespace).await.conv()
    }
    async fn get_certificate(
        &mut self,
        namespace: String,
        name: String,
    ) -> Result<k8s01::Certificate, t01::Error> {
        k8s::Host::get_certificate(self, namespace, name)
            .await
            .conv()
    }
    async fn scale_deployment(
        &mut self,
        namespace: String,
        name: String,
        replicas: u32,
    ) -> Result<k8s01::Deployment, t01::Error> {
        k8s::Host::scale_deployment(self, namespace, name, replicas)
            .await
            .conv()
    }
    async fn rollback_deployment(
        &mut self,
        namespace: String,
        name: String,
        to_revision: Option<u64>,
    ) -> Result<k8s01::Deployment, t01::Error> {
        k8s::Host::rollback_deployment(self, namespace, name, to_revision)
            .await
            .conv()
    }
    async fn delete_pods(
        &mut self,
        namespace: String,
        names: Vec<String>,
    ) -> Result<u32, t01::Error> {
        k8s::Host::delete_pods(self, namespace, names).await.conv()
    }
    async fn annotate(
        &mut self,
        target: k8s01::ObjectRef,
        annotations: Vec<t01::Pair>,
    ) -> Result<(), t01::Error> {
        k8s::Host::annotate(self, target.conv(), annotations.conv())
            .await
            .map_err(Conv::conv)
    }
    async fn renew_certificate(
        &mut self,
        namespace: String,
        name: String,
    ) -> Result<k8s01::Certificate, t01::Error> {
        k8s::Host::renew_certificate(self, namespace, name)
            .await
            .conv()
    }
}

// replica-gap: a runwarden context source written in JavaScript.
//
// Reports the deployments in the alert's namespace that have fewer ready
// replicas than desired. Reads the cluster only through the host's typed
// `k8s` interface, in the namespaces its policy grants.
//
// Built with componentize-js (jco componentize) against the `k8s-source`
// world, with every optional WASI feature disabled: it imports config, log
// and k8s, so its policy grants k8s read and a log quota, nothing else.

import { listDeployments } from "runwarden:plugin/k8s@0.2.0";
import { emit } from "runwarden:plugin/log@0.2.0";

function label(alert, key) {
  const pair = alert.labels.find((p) => p.key === key);
  return pair ? pair.value : undefined;
}

export const source = {
  describe() {
    return {
      name: "replica-gap",
      description: "Deployments with fewer ready replicas than desired (JavaScript)",
      provides: ["k8s-event"],
    };
  },

  gather(alert, window) {
    const namespace = label(alert, "namespace");
    if (!namespace) {
      // An `err(error)` result: the host sees a typed invalid-input.
      throw { tag: "invalid-input", val: "the alert has no namespace label" };
    }
    // A host refusal arrives as a thrown error carrying the typed value;
    // rethrowing its payload keeps it a denial.
    let deployments;
    try {
      deployments = listDeployments(namespace);
    } catch (e) {
      throw e.payload ?? { tag: "failed", val: String(e) };
    }
    const short = deployments.filter((d) => d.readyReplicas < d.replicas);
    emit("info", "deployments checked", [
      { key: "namespace", value: namespace },
      { key: "short", value: String(short.length) },
    ]);
    return short.map((d) => ({
      kind: "k8s-event",
      summary: `${d.namespace}/${d.name}: ${d.readyReplicas} of ${d.replicas} replicas ready (revision ${d.revision})`,
      bodyJson: JSON.stringify({
        deployment: d.name,
        desired: d.replicas,
        ready: d.readyReplicas,
        revision: Number(d.revision),
        images: d.images,
      }),
      observedFrom: window.start,
      observedTo: window.end,
      facts: [],
    }));
  },
};

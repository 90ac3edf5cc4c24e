// scale-by: a runwarden remediation tool written in JavaScript.
//
// `scale_deployment_by` adds (or removes) replicas relative to the current
// count: "two more payment-api replicas". The host validates the arguments
// against the schema before `plan` or `execute` run, and checks the scale
// call against the grant's namespaces and `max_replicas`; a refusal comes
// back typed (`denied`) and is passed on unchanged.
//
// Built with componentize-js against the `k8s-tool` world, with every
// optional WASI feature disabled.

import { getDeployment, scaleDeployment } from "runwarden:plugin/k8s@0.2.0";

const SCHEMA = {
  type: "object",
  properties: {
    namespace: { type: "string", minLength: 1 },
    name: { type: "string", minLength: 1 },
    delta: { type: "integer", minimum: -50, maximum: 50, not: { const: 0 } },
  },
  required: ["namespace", "name", "delta"],
  additionalProperties: false,
};

// A typed error from the host arrives as a thrown error with `payload`.
function host(call) {
  try {
    return call();
  } catch (e) {
    throw e.payload ?? { tag: "failed", val: String(e) };
  }
}

function target(call) {
  if (call.tool !== "scale_deployment_by") {
    throw { tag: "invalid-input", val: `unknown tool ${call.tool}` };
  }
  const args = JSON.parse(call.argumentsJson);
  const current = host(() => getDeployment(args.namespace, args.name));
  const wanted = current.replicas + args.delta;
  if (wanted < 0) {
    throw { tag: "invalid-input", val: `${current.replicas} replicas minus ${-args.delta} is below zero` };
  }
  return { args, current, wanted };
}

// One typed effect: this Deployment from its current count to `wanted`.
// The host judges it (replica floor and ceiling, oscillation) and lets
// `execute` scale to exactly this count and nothing else.
function change({ args, current, wanted }) {
  return {
    effect: {
      tag: "scale",
      val: {
        target: { kind: "Deployment", namespace: args.namespace, name: args.name },
        fromReplicas: current.replicas,
        toReplicas: wanted,
      },
    },
    description: `scale deployment ${args.namespace}/${args.name} by ${args.delta > 0 ? "+" : ""}${args.delta}: ${current.replicas} -> ${wanted}`,
  };
}

export const tool = {
  describe() {
    return [
      {
        name: "scale_deployment_by",
        description: "Add or remove replicas relative to the deployment's current count",
        parametersSchema: JSON.stringify(SCHEMA),
        effect: "mutate",
        risk: "medium",
        reversible: true,
      },
    ];
  },

  plan(call) {
    const t = target(call);
    return {
      summary: `would scale ${t.args.namespace}/${t.args.name} from ${t.current.replicas} to ${t.wanted} replicas`,
      changes: [change(t)],
    };
  },

  execute(call) {
    const t = target(call);
    const after = host(() => scaleDeployment(t.args.namespace, t.args.name, t.wanted));
    return {
      summary: `scaled ${t.args.namespace}/${t.args.name} from ${t.current.replicas} to ${after.replicas} replicas`,
      changes: [change(t)],
      detailJson: JSON.stringify({ replicas: after.replicas }),
    };
  },
};

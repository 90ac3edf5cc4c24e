"""restart-crashlooping: a runwarden remediation tool written in Python.

`restart_crashlooping_pods` deletes the pods of one service that have
restarted at least N times, so their controller recreates them. `plan`
lists them without changing anything; `execute` deletes them. The host
validates the arguments against the schema below before either runs, and
checks the `delete-pods` call against the grant (namespaces, at most
`max_pods_per_action` pods): a refusal comes back as `error.denied`, which
this plugin passes on unchanged.

Built with componentize-py against the `k8s-tool` world.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import k8s, log, types

SCHEMA = {
    "type": "object",
    "properties": {
        "namespace": {"type": "string", "minLength": 1},
        "service": {"type": "string", "minLength": 1},
        "min_restarts": {"type": "integer", "minimum": 1, "maximum": 1000},
    },
    "required": ["namespace", "service"],
    "additionalProperties": False,
}


def _targets(args):
    namespace, service = args["namespace"], args["service"]
    threshold = args.get("min_restarts", 3)
    pods = k8s.list_pods(namespace, None)
    return namespace, service, [
        p for p in pods if p.deployment == service and p.restarts >= threshold
    ]


def _changes(namespace, service, pods):
    """One typed effect: exactly these pods of this Deployment. The host
    lets `execute` delete these and no others."""
    if not pods:
        return []
    return [
        types.Change(
            effect=types.ChangeEffect_RestartPods(
                types.RestartPodsChange(
                    target=types.ObjectRef(
                        kind="Deployment", namespace=namespace, name=service
                    ),
                    pods=[p.name for p in pods],
                )
            ),
            description="restart {} crash-looping pod(s) of {}/{}: {}".format(
                len(pods),
                namespace,
                service,
                ", ".join(
                    "{} ({} restarts, last: {})".format(
                        p.name, p.restarts, p.last_termination_reason or "unknown"
                    )
                    for p in pods
                ),
            ),
        )
    ]


def _args(call: types.ToolCall):
    if call.tool != "restart_crashlooping_pods":
        raise Err(types.Error_InvalidInput("unknown tool " + call.tool))
    try:
        return json.loads(call.arguments_json)
    except ValueError as e:
        raise Err(types.Error_InvalidInput("arguments: {}".format(e)))


class Tool(exports.Tool):
    def describe(self):
        return [
            types.ToolSpec(
                name="restart_crashlooping_pods",
                description="Delete the pods of a service that keep restarting, so their controller recreates them",
                parameters_schema=json.dumps(SCHEMA),
                effect=types.Effect.MUTATE,
                risk=types.Risk.MEDIUM,
                reversible=False,
            )
        ]

    def plan(self, call):
        namespace, service, pods = _targets(_args(call))
        return types.ActionPlan(
            summary="would restart {} crash-looping pod(s) of {}/{}".format(
                len(pods), namespace, service
            ),
            changes=_changes(namespace, service, pods),
        )

    def execute(self, call):
        namespace, service, pods = _targets(_args(call))
        if not pods:
            return types.Outcome(
                summary="no pod of {}/{} is crash-looping".format(namespace, service),
                changes=[],
                detail_json="{}",
            )
        deleted = k8s.delete_pods(namespace, [p.name for p in pods])
        log.emit(
            log.Level.INFO,
            "pods deleted",
            [types.Pair("namespace", namespace), types.Pair("count", str(deleted))],
        )
        return types.Outcome(
            summary="restarted {} crash-looping pod(s) of {}/{}".format(
                deleted, namespace, service
            ),
            changes=_changes(namespace, service, pods),
            detail_json=json.dumps({"deleted": [p.name for p in pods]}),
        )

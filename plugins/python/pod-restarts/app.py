"""pod-restarts: a runwarden context source written in Python.

Reports the pods of the alert's service that keep restarting, with the
reason of their last termination (OOMKilled, Error...). It reads the
cluster through the host's typed `k8s` interface: no kubeconfig, no token,
and only the namespaces its policy grants.

Built with componentize-py against the `k8s-source` world, which imports
only config, log and k8s, so its policy grants only those.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.imports import config, k8s, log, types


def _label(alert: types.Alert, key: str):
    for pair in alert.labels:
        if pair.key == key:
            return pair.value
    return None


def _threshold() -> int:
    raw = config.get("min_restarts")
    try:
        return max(1, int(raw)) if raw is not None else 3
    except ValueError:
        return 3


class Source(exports.Source):
    def describe(self) -> types.SourceInfo:
        return types.SourceInfo(
            name="pod-restarts",
            description="Pods of the alert's service that keep restarting, and why (Python)",
            provides=[types.EvidenceKind.K8S_EVENT],
        )

    def gather(self, alert: types.Alert, window: types.TimeWindow) -> list:
        namespace = _label(alert, "namespace")
        service = _label(alert, "service")
        if not namespace:
            raise Err(types.Error_InvalidInput("the alert has no namespace label"))
        try:
            pods = k8s.list_pods(namespace, None)
        except Err as e:
            # Pass the host's typed error (a denial stays a denial).
            raise e
        threshold = _threshold()
        restarting = [
            p
            for p in pods
            if p.restarts >= threshold and (service is None or p.deployment == service)
        ]
        log.emit(
            log.Level.INFO,
            "pods checked",
            [
                types.Pair("namespace", namespace),
                types.Pair("pods", str(len(pods))),
                types.Pair("restarting", str(len(restarting))),
            ],
        )
        if not restarting:
            return []
        reasons = sorted({p.last_termination_reason or "unknown" for p in restarting})
        summary = "{} of {} pods of {} restarted {}+ times (last termination: {})".format(
            len(restarting),
            len([p for p in pods if service is None or p.deployment == service]),
            service or namespace,
            threshold,
            ", ".join(reasons),
        )
        body = [
            {
                "pod": p.name,
                "restarts": p.restarts,
                "phase": p.phase,
                "ready": p.ready,
                "last_termination_reason": p.last_termination_reason,
            }
            for p in restarting
        ]
        return [
            types.Evidence(
                kind=types.EvidenceKind.K8S_EVENT,
                summary=summary,
                body_json=json.dumps(body),
                observed_from=window.start,
                observed_to=window.end,
                facts=[],
            )
        ]

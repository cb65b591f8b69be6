"""Sample payloads for every notification kind: `watcher render KIND`, `check-config`."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, assert_never

from watcher.core.failures import failure_groups
from watcher.core.kinds import TEMPLATED, Kind
from watcher.core.models import Orchestration
from watcher.core.policy import Reference, summary
from watcher.core.stuck import Stalled
from watcher.core.stuck import view as stuck_view

NOW = datetime(2024, 5, 14, 10, 30, tzinfo=UTC)

SAMPLE_ORCHESTRATION = Orchestration(
    "5a3f1f5e-8d2b-4f0c-9b8e-0f5c2e7d9a11",
    type="upgradeCluster",
    state="in progress",
    description="Scheduled 120 operations",
    created_at=NOW - timedelta(hours=2, minutes=30),
    updated_at=NOW - timedelta(hours=2, minutes=30),
    parameters={
        "strategy": {"type": "parallel", "schedule": "now", "parallel": {"workers": 5}},
        "kubernetes": {"kubernetesVersion": "1.28.9"},
    },
)
SAMPLE_COUNTS = {"failed": 2, "in progress": 5, "pending": 100, "succeeded": 13}
SAMPLE_FAILURES = [
    {
        "description": "provisioner client returns failed status: Operation failed: last error: "
        "shoot reconciliation timed out",
        "shoot": f"c-{i:07x}",
        "operation_id": f"9a8f1c2e-5b3d-4e6f-8a7b-1c2d3e4f5a{i:02x}",
    }
    for i in range(5)
] + [
    {
        "description": "operation has reached the time limit: 3h0m0s",
        "shoot": "c-2d3e4f5",
        "operation_id": "5b7c9d1e-3f4a-4b6c-8d7e-9f0a1b2c3d4e",
    }
]


def sample_payload(name: str) -> dict[str, Any]:
    """A realistic payload for the kind ``name``, shaped exactly like the policy's."""
    kind = Kind(name)
    base = summary(SAMPLE_ORCHESTRATION, SAMPLE_COUNTS, NOW, Reference(NOW - timedelta(hours=1), 5))
    base.update(kind=kind, key=f"sample:{kind}", last_change="operations 3 succeeded, 1 failed")
    groups = failure_groups(SAMPLE_FAILURES)
    change = {
        "from": "in progress",
        "to": "failed",
        "via": [],
        "description": "Scheduled 120 operations",
    }
    if kind is Kind.TRACKING_STARTED or kind is Kind.PROGRESS:
        pass  # the card: the summary is all it shows
    elif kind is Kind.FAILURE_DIGEST:
        base.update(new_failures=len(SAMPLE_FAILURES), failures=groups, more_reasons=0)
    elif kind is Kind.STATE_CHANGED:
        base.update(
            change={
                "from": "failed",
                "to": "in progress",
                "via": ["retrying"],
                "description": "Scheduled 120 operations, retried 2 operations",
            }
        )
    elif kind is Kind.RETRIED:
        base.update(
            run=2,
            retried_operations=2,
            change={
                "from": "failed",
                "to": "retrying",
                "via": [],
                "description": "Scheduled 120 operations, retrying",
            },
        )
    elif kind is Kind.FINISHED:
        ended = replace(SAMPLE_ORCHESTRATION, state="failed", updated_at=NOW)
        counts = {"failed": 6, "succeeded": 114}
        base = summary(ended, counts, NOW, None)
        base.update(
            kind=kind,
            key="sample:finished",
            last_change="orchestration in progress -> failed",
            change=change,
            failures=groups,
            more_reasons=0,
        )
    elif kind is Kind.STUCK or kind is Kind.UNSTUCK:
        stalled = [
            Stalled(
                "in progress",
                NOW - timedelta(hours=2, minutes=40 - i),
                f"3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e{i:02x}",
                f"c-{i + 0x51:07x}",
                "cluster upgrade in progress" if i else "Performing post-upgrade tasks",
            )
            for i in range(4)
        ]
        shown = stuck_view(stalled, NOW, 7200.0)
        if kind is Kind.STUCK:
            base.update(stuck=shown)
        else:
            base.update(stuck=None, moved=shown)
    elif kind is Kind.AFTER_OUTCOME:
        ended = replace(
            SAMPLE_ORCHESTRATION, state="failed", updated_at=NOW - timedelta(minutes=20)
        )
        base = summary(ended, {"failed": 6, "succeeded": 113, "in progress": 1}, NOW, None)
        late = [SAMPLE_FAILURES[-1]]
        base.update(
            kind=kind,
            key="sample:after_outcome",
            last_change="operations 3 succeeded, 1 failed",
            running_after_outcome=1,
            after={
                "outcome": "failed",
                "outcome_at": (NOW - timedelta(minutes=20)).isoformat(),
                "ended": 4,
                "counts": {"failed": 1, "succeeded": 3},
                "failed": 1,
                "running": 1,
                "failures": failure_groups(late),
                "more_reasons": 0,
            },
        )
    elif kind is Kind.KEB_UNHEALTHY or kind is Kind.KEB_RECOVERED:
        base = {
            "kind": kind,
            "key": f"sample:{kind}",
            "keb": {
                "url": "https://kyma-env-broker.example.com",
                "since": (NOW - timedelta(minutes=12)).isoformat(),
                "error": "KEB GET /orchestrations/5a3f...: 401 Unauthorized: Jwt is expired",
            },
            "duration_seconds": 720.0,
            "now": NOW.isoformat(),
        }
    elif kind is Kind.NOT_FOUND:
        base = {
            "kind": kind,
            "key": "sample:not_found",
            "orchestration": {"id": SAMPLE_ORCHESTRATION.orchestration_id},
        }
    elif kind is Kind.GIVEN_UP:
        base = {"kind": kind, "key": "sample:given_up", "count": 3}
    else:
        assert_never(kind)
    return base


SAMPLES: dict[str, dict[str, Any]] = {kind: sample_payload(kind) for kind in TEMPLATED}

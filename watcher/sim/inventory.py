"""The simulated SKR runtimes and the target resolver of ``POST /upgrade/cluster``.

Resolution follows ``common/orchestration/resolver.go`` (docs/keb-api.md §3.2): fields of one
target are ANDed; ``runtimeID`` is exact and makes the other fields irrelevant; ``planName``,
``shoot`` and ``instanceID`` are exact; ``globalAccount``, ``subAccount`` and ``region`` are
unanchored regular expressions; ``target`` only knows ``"all"``. Excludes are resolved first and
the result is de-duplicated by runtime ID, keeping inventory order.

Deviation: a regular expression that does not compile matches nothing (KEB's error path for
this is not documented in the note).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

US_PER_SECOND: Final = 1_000_000
HOUR_US: Final = 3600 * US_PER_SECOND
DAY_US: Final = 24 * HOUR_US
#: Length of every simulated shoot maintenance window.
WINDOW_HOURS_LONG: Final = 4
#: Begin hours (UTC) seen in KEB's own samples (22:00-02:00, 04:00-08:00 ...).
TYPICAL_WINDOW_HOURS: Final = (22, 0, 2, 4, 3)


@dataclass(frozen=True, slots=True)
class Plan:
    """A KEB service plan (``internal/broker/plans.go``) and what its shoots look like."""

    name: str
    plan_id: str
    regions: tuple[str, ...]
    machine_type: str


PLANS: Final[dict[str, Plan]] = {
    p.name: p
    for p in (
        Plan(
            "azure",
            "4deee563-e5ec-4731-b9b1-53b42d855f0c",
            ("westeurope", "northeurope", "eastus", "switzerlandnorth"),
            "Standard_D4_v3",
        ),
        Plan(
            "aws",
            "361c511f-f939-4621-b228-d0fb79a1fe15",
            ("eu-central-1", "us-east-1", "ap-southeast-1"),
            "m5.xlarge",
        ),
        Plan(
            "gcp",
            "ca6e5357-707f-4565-bbbd-b3ab732597c6",
            ("europe-west3", "us-central1"),
            "n2-standard-4",
        ),
        Plan(
            "azure_lite", "8cb22518-aa26-44c5-91a0-e669ec9bf443", ("westeurope",), "Standard_D4_v3"
        ),
        Plan(
            "sap-converged-cloud",
            "03b812ac-c991-4528-b5bd-08b303523a63",
            ("eu-de-1",),
            "g_c4_m16",
        ),
    )
}

TARGET_KEYS: Final = (
    "target",
    "globalAccount",
    "subAccount",
    "region",
    "runtimeID",
    "planName",
    "shoot",
    "instanceID",
)


_VERSION_CLEAR: Final = ~((0xC000 << 48) | (0xF000 << 64))
_VERSION_SET: Final = (0x8000 << 48) | (0x4000 << 64)


def new_uuid(rng: random.Random) -> str:
    """A UUIDv4 drawn from ``rng``, so that a seed reproduces every ID.

    Equal to ``str(uuid.UUID(int=rng.getrandbits(128), version=4))``, formatted directly
    because the ``large`` scenario draws hundreds of thousands of them.

    >>> import random, uuid
    >>> expected = uuid.UUID(int=random.Random(7).getrandbits(128), version=4)
    >>> new_uuid(random.Random(7)) == str(expected)
    True
    """
    h = f"{(rng.getrandbits(128) & _VERSION_CLEAR) | _VERSION_SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


@dataclass(frozen=True, slots=True)
class Runtime:
    """One SKR: its identity, plan, shoot and daily maintenance window (``window_hour`` UTC)."""

    runtime_id: str
    instance_id: str
    global_account_id: str
    sub_account_id: str
    plan: Plan
    shoot_name: str
    region: str
    window_hour: int


def next_window(window_hour: int, now_us: int) -> tuple[int, int]:
    """The current or next occurrence of a daily window, as ``(begin_us, end_us)``.

    Like ``resolveMaintenanceWindowTime`` (docs/keb-api.md §9): a window that is open now is used
    as is; one that already ended today rolls to the next day.
    """
    day = now_us - now_us % DAY_US
    for offset in (-1, 0, 1):
        begin = day + offset * DAY_US + window_hour * HOUR_US
        end = begin + WINDOW_HOURS_LONG * HOUR_US
        if end > now_us:
            return begin, end
    raise AssertionError("unreachable: tomorrow's window always ends in the future")


def year0_window(window_hour: int) -> tuple[str, str]:
    """The raw shoot window as KEB parses ``HHMMSS+ZZZZ``: year 0 (docs/keb-api.md §3.5)."""
    end_hour = (window_hour + WINDOW_HOURS_LONG) % 24
    return f"0000-01-01T{window_hour:02d}:00:00Z", f"0000-01-01T{end_hour:02d}:00:00Z"


class Inventory:
    """All runtimes of the simulated Gardener project, indexed for the resolver."""

    def __init__(self) -> None:
        self.runtimes: list[Runtime] = []
        self._by_id: dict[str, Runtime] = {}
        self._by_shoot: dict[str, Runtime] = {}
        self._by_instance: dict[str, Runtime] = {}
        self._by_account: dict[str, list[Runtime]] = {}

    def __len__(self) -> int:
        return len(self.runtimes)

    def get(self, runtime_id: str) -> Runtime | None:
        return self._by_id.get(runtime_id)

    def add_group(
        self,
        rng: random.Random,
        count: int,
        *,
        plans: Iterable[str] = ("azure", "aws", "gcp"),
        window_hours: tuple[int, ...] | None = None,
    ) -> str:
        """Create ``count`` runtimes under one new global account; returns that account ID."""
        account = new_uuid(rng)
        plan_list = [PLANS[name] for name in plans]
        group = self._by_account.setdefault(account, [])
        for index in range(count):
            plan = plan_list[index % len(plan_list)]
            hour = (
                window_hours[index % len(window_hours)]
                if window_hours
                else TYPICAL_WINDOW_HOURS[rng.randrange(len(TYPICAL_WINDOW_HOURS))]
            )
            shoot = f"c-{rng.getrandbits(28):07x}"
            while shoot in self._by_shoot:
                shoot = f"c-{rng.getrandbits(28):07x}"
            runtime = Runtime(
                runtime_id=new_uuid(rng),
                instance_id=new_uuid(rng),
                global_account_id=account,
                sub_account_id=new_uuid(rng),
                plan=plan,
                shoot_name=shoot,
                region=plan.regions[index % len(plan.regions)],
                window_hour=hour,
            )
            self.runtimes.append(runtime)
            group.append(runtime)
            self._by_id[runtime.runtime_id] = runtime
            self._by_shoot[shoot] = runtime
            self._by_instance[runtime.instance_id] = runtime
        return account

    def resolve(
        self, include: Iterable[Mapping[str, str]], exclude: Iterable[Mapping[str, str]] = ()
    ) -> list[Runtime]:
        """The runtimes an upgrade with these targets gets one operation each for."""
        excluded: set[str] = set()
        for target in exclude:
            excluded.update(rt.runtime_id for rt in self._match(target))
        seen: set[str] = set()
        out: list[Runtime] = []
        for target in include:
            for runtime in self._match(target):
                if runtime.runtime_id not in excluded and runtime.runtime_id not in seen:
                    seen.add(runtime.runtime_id)
                    out.append(runtime)
        return out

    def _match(self, target: Mapping[str, str]) -> list[Runtime]:
        runtime_id = target.get("runtimeID", "")
        if runtime_id:
            found = self._by_id.get(runtime_id)
            return [found] if found is not None else []
        patterns: dict[str, re.Pattern[str]] = {}
        for key in ("globalAccount", "subAccount", "region"):
            if target.get(key):
                try:
                    patterns[key] = re.compile(target[key])
                except re.error:
                    return []
        candidates: Iterable[Runtime]
        shoot, instance = target.get("shoot", ""), target.get("instanceID", "")
        if shoot:
            candidates = [self._by_shoot[shoot]] if shoot in self._by_shoot else []
        elif instance:
            candidates = [self._by_instance[instance]] if instance in self._by_instance else []
        elif "globalAccount" in patterns:
            # Match the account pattern once per account, not once per runtime.
            pattern = patterns["globalAccount"]
            candidates = [
                rt for acc, rts in self._by_account.items() if pattern.search(acc) for rt in rts
            ]
        else:
            candidates = self.runtimes
        kind, plan = target.get("target", ""), target.get("planName", "")
        if kind and kind != "all":
            return []
        sub, region = patterns.get("subAccount"), patterns.get("region")
        account = patterns.get("globalAccount") if shoot or instance else None
        return [
            rt
            for rt in candidates
            if (not plan or rt.plan.name == plan)
            and (not shoot or rt.shoot_name == shoot)
            and (not instance or rt.instance_id == instance)
            and (account is None or account.search(rt.global_account_id))
            and (sub is None or sub.search(rt.sub_account_id))
            and (region is None or region.search(rt.region))
        ]

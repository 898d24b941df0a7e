"""Rule evaluation: pure (no I/O, no clock; every time comes with an observation).

`evaluate(rule, state, observation)` returns the rule's new state and the crossing the
observation caused, if any. The semantics, for `above X` (`below X` is the mirror
image, with `<=` and `X + hysteresis`):

- **First observation** (no previous price known): never fires. It only sets the arm:
  armed if the price is under X, disarmed if it is already at or over X. A rule that is
  added (or whose state is lost) while the price is already above X does not announce
  a crossing it did not see; it fires at the next real crossing. This is what stops a
  restart or a new rule from sending a stale "BTC is above X".
- **Fire**: an observation with price >= X while armed fires and disarms the rule.
- **Re-arm**: a disarmed rule re-arms on an observation with price < X - hysteresis
  (strictly: with hysteresis 0, touching X again does not re-arm, going under it does).
  So a rule fires once per crossing, never once per record while the price stays up.
- **Cooldown**: a crossing less than `cooldown_seconds` (observation time) after the
  last *notified* one is consumed without a notification: the rule disarms as usual and
  needs to re-arm before it can fire again; `suppressed` counts it. The cooldown is
  measured from the last notification, not from the suppressed crossing.
- **Order**: an observation of another pair, or not newer than the last one evaluated
  (`at <= last_at`: a replay, a duplicate, a late record), leaves the state unchanged.
  Replaying a stream after a crash therefore cannot fire twice.
- **Rule edits**: the state records the rule's condition (`spec`). When the condition,
  threshold, hysteresis or window changed since (same rule name, edited settings), the
  arm and the window start afresh as on a first observation (no stale "crossing" from
  the old threshold); `last_at`, `last_fired_at` and the counters are kept.
- **move_pct P within W seconds**: the reference is the oldest price observed within the
  last W seconds (observation times, the current one excluded). When armed and
  |price / reference - 1| >= P %, it fires (direction up or down) and disarms; it re-arms
  once the move against the then-current reference is under P/2 %. With no reference
  (first observation, or nothing within W) nothing fires.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from coinlake.alerts.config import AlertRule
from coinlake.contract import parse_ts

#: Largest number of prices a move_pct rule keeps for its window (oldest dropped first).
MAX_WINDOW = 20_000


@dataclass(frozen=True)
class Observation:
    crypto: str
    currency: str
    price: Decimal
    at: dt.datetime  # UTC, aware
    event_id: str

    @property
    def pair(self) -> str:
        return f"{self.crypto}-{self.currency}"


@dataclass(frozen=True)
class Crossing:
    rule: str
    condition: str  # above | below | move
    direction: str  # up | down
    crypto: str
    currency: str
    threshold: Decimal  # the price level (above/below) or the percentage (move)
    price: Decimal
    at: dt.datetime
    event_id: str
    previous_price: Decimal | None
    previous_at: dt.datetime | None
    reference_price: Decimal | None = None  # move: the price at the start of the window
    move_pct: Decimal | None = None  # move: the signed move, in %


@dataclass(frozen=True)
class RuleState:
    armed: bool = True
    last_price: Decimal | None = None
    last_at: dt.datetime | None = None
    last_fired_at: dt.datetime | None = None
    fired: int = 0  # crossings notified
    suppressed: int = 0  # crossings consumed by the cooldown
    window: tuple[tuple[dt.datetime, Decimal], ...] = field(default=())  # move_pct only
    spec: str | None = None  # the condition the state belongs to (`rule_spec`)

    def to_json(self) -> dict[str, Any]:
        return {
            "armed": self.armed,
            "last_price": _s(self.last_price),
            "last_at": _ts(self.last_at),
            "last_fired_at": _ts(self.last_fired_at),
            "fired": self.fired,
            "suppressed": self.suppressed,
            "window": [[_ts(t), str(p)] for t, p in self.window],
            "spec": self.spec,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RuleState:
        return cls(
            armed=bool(data.get("armed", True)),
            last_price=None if data.get("last_price") is None else Decimal(data["last_price"]),
            last_at=None if data.get("last_at") is None else parse_ts(data["last_at"]),
            last_fired_at=None if data.get("last_fired_at") is None else parse_ts(data["last_fired_at"]),
            fired=int(data.get("fired", 0)),
            suppressed=int(data.get("suppressed", 0)),
            window=tuple((parse_ts(t), Decimal(p)) for t, p in data.get("window", ())),
            spec=data.get("spec"),
        )


def _s(v: Decimal | None) -> str | None:
    return None if v is None else str(v)


def _ts(t: dt.datetime | None) -> str | None:
    # Microseconds kept: two observations within one millisecond stay ordered.
    return None if t is None else t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rule_spec(rule: AlertRule) -> str:
    """What the arm of a state depends on: pair, condition, threshold, hysteresis, window."""
    level = rule.above if rule.above is not None else rule.below if rule.below is not None else rule.move_pct
    return f"{rule.pair}|{rule.condition}|{level}|{rule.hysteresis}|{rule.window_seconds}"


def matches(rule: AlertRule, obs: Observation) -> bool:
    return rule.crypto == obs.crypto and rule.currency == obs.currency


def evaluate(rule: AlertRule, state: RuleState, obs: Observation) -> tuple[RuleState, Crossing | None]:
    """The rule's state after `obs`, and the crossing `obs` caused (None if none, or if
    the cooldown suppressed it). Pure: the same inputs always give the same outputs."""
    if not matches(rule, obs) or (state.last_at is not None and obs.at <= state.last_at):
        return state, None
    spec = rule_spec(rule)
    if state.spec != spec:  # a new rule, or an edited one: arm afresh, keep time and counters
        state = RuleState(
            last_at=state.last_at, last_fired_at=state.last_fired_at, fired=state.fired,
            suppressed=state.suppressed, spec=spec,
        )  # fmt: skip
    if rule.move_pct is not None:
        return _evaluate_move(rule, state, obs)
    threshold = rule.above if rule.above is not None else rule.below
    assert threshold is not None
    up = rule.above is not None
    hit = obs.price >= threshold if up else obs.price <= threshold
    rearm = obs.price < threshold - rule.hysteresis if up else obs.price > threshold + rule.hysteresis
    seen = dataclasses.replace(state, last_price=obs.price, last_at=obs.at)
    if state.last_price is None:  # first observation: set the arm, never fire
        return dataclasses.replace(seen, armed=not hit), None
    if state.armed and hit:
        crossing = Crossing(
            rule=rule.name, condition=rule.condition, direction="up" if up else "down",
            crypto=obs.crypto, currency=obs.currency, threshold=threshold, price=obs.price, at=obs.at,
            event_id=obs.event_id, previous_price=state.last_price, previous_at=state.last_at,
        )  # fmt: skip
        return _fire(rule, seen, crossing)
    if not state.armed and rearm:
        return dataclasses.replace(seen, armed=True), None
    return seen, None


def _fire(rule: AlertRule, seen: RuleState, crossing: Crossing) -> tuple[RuleState, Crossing | None]:
    """Disarm; notify unless within the cooldown of the last notification."""
    last = seen.last_fired_at
    if last is not None and (crossing.at - last).total_seconds() < rule.cooldown_seconds:
        return dataclasses.replace(seen, armed=False, suppressed=seen.suppressed + 1), None
    return dataclasses.replace(seen, armed=False, last_fired_at=crossing.at, fired=seen.fired + 1), crossing


def _evaluate_move(rule: AlertRule, state: RuleState, obs: Observation) -> tuple[RuleState, Crossing | None]:
    assert rule.move_pct is not None and rule.window_seconds is not None
    start = obs.at - dt.timedelta(seconds=rule.window_seconds)
    window = [(t, p) for t, p in state.window if t >= start]
    reference = window[0][1] if window else None
    window.append((obs.at, obs.price))
    seen = dataclasses.replace(state, last_price=obs.price, last_at=obs.at, window=tuple(window[-MAX_WINDOW:]))
    if reference is None:
        return seen, None
    move = (obs.price / reference - 1) * 100
    pct = Decimal(str(rule.move_pct))
    if state.armed and abs(move) >= pct:
        crossing = Crossing(
            rule=rule.name, condition="move", direction="up" if move > 0 else "down",
            crypto=obs.crypto, currency=obs.currency, threshold=pct, price=obs.price, at=obs.at,
            event_id=obs.event_id, previous_price=state.last_price, previous_at=state.last_at,
            reference_price=reference, move_pct=move,
        )  # fmt: skip
        return _fire(rule, seen, crossing)
    if not state.armed and abs(move) < pct / 2:
        return dataclasses.replace(seen, armed=True), None
    return seen, None


def evaluate_all(
    rule: AlertRule, state: RuleState, observations: list[Observation]
) -> tuple[RuleState, list[Crossing]]:
    """`evaluate` over observations in time order (sorted here; ties keep their order)."""
    crossings: list[Crossing] = []
    for obs in sorted((o for o in observations if matches(rule, o)), key=lambda o: o.at):
        state, crossing = evaluate(rule, state, obs)
        if crossing is not None:
            crossings.append(crossing)
    return state, crossings

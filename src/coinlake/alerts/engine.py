"""Rules over a batch of observations, with their state in a `RuleStore`.

For each rule that the batch concerns: load its state (cached after the first load),
evaluate the observations in time order, hand the resulting notifications to
`before_save` (the local worker writes them to the durable outbox; the Lambda shape
sends them), then save the new state with a compare-and-set. If someone else saved the
rule in between, the state is reloaded and the batch evaluated again; observations the
other evaluator already covered are then ignored (they are not newer than its state).

Why notifications go out before the state is saved: a crash between the two replays
the batch from the old state, which gives the same crossings with the same ids (the
outbox ignores them; a receiver can recognise them): at least once, never lost. Saving
first and crashing would lose the crossing for good.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence

from coinlake.alerts.config import AlertRule
from coinlake.alerts.events import Notification, crossing_notification
from coinlake.alerts.rules import Observation, RuleState, evaluate_all, matches
from coinlake.alerts.store import RuleStore, Versioned

BeforeSave = Callable[[AlertRule, list[Notification]], None]


class RuleConflict(RuntimeError):
    """A rule's state kept changing under us (another evaluator saving it)."""


class RuleEngine:
    def __init__(self, rules: Sequence[AlertRule], store: RuleStore, *, max_conflicts: int = 5):
        self.rules = list(rules)
        self.store = store
        self.max_conflicts = max_conflicts
        self._cache: dict[str, Versioned] = {}

    def states(self) -> dict[str, RuleState]:
        """The current state of every rule (from the store where not cached yet)."""
        missing = [r.name for r in self.rules if r.name not in self._cache]
        if missing:
            self._cache.update(self.store.load(missing))
        return {r.name: self._cache[r.name].state for r in self.rules}

    def apply(
        self, observations: Iterable[Observation], before_save: BeforeSave, *, now: dt.datetime | None = None
    ) -> list[Notification]:
        """Evaluate every rule on `observations`; returns the notifications made (in rule
        order, each rule's in time order), after their rule's state was saved."""
        batch = list(observations)
        out: list[Notification] = []
        for rule in self.rules:
            relevant = [o for o in batch if matches(rule, o)]
            if relevant:
                out += self._apply_rule(rule, relevant, before_save, now)
        return out

    def _apply_rule(
        self, rule: AlertRule, observations: list[Observation], before_save: BeforeSave, now: dt.datetime | None
    ) -> list[Notification]:
        for _ in range(self.max_conflicts + 1):
            current = self._cache.get(rule.name) or self.store.load([rule.name])[rule.name]
            state, crossings = evaluate_all(rule, current.state, observations)
            if state == current.state:  # nothing newer than what the state has seen
                self._cache[rule.name] = current
                return []
            notifications = [crossing_notification(rule, c, now=now) for c in crossings]
            if notifications:
                before_save(rule, notifications)
            if self.store.save(rule.name, state, current.version):
                self._cache[rule.name] = Versioned(state, current.version + 1)
                return notifications
            self._cache.pop(rule.name, None)  # someone else saved it: reload and evaluate again
        raise RuleConflict(f"rule {rule.name!r}: state changed under us {self.max_conflicts + 1} times")

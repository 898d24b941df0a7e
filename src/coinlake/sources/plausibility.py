"""Plausibility: a price far from the last accepted one is held until the next observation confirms it.

Pure: no I/O, no clock, no logging. The caller (the poller) feeds observations in order
with `observe()`, acts on the `Decision` (emit, dead-letter) and persists `state()`, a
plain JSON-ready dict, wherever it keeps state (the local state store; a table on AWS).

The rule, per pair (`crypto-currency`):

- Distance. Two prices `a` and `b` are *within the threshold* of each other when
  `max(a/b, b/a) <= 1 + max_jump_pct/100`. It is symmetric in log space: with the default
  50, a price is a jump when it is above x1.5 or below /1.5 (a fall of more than 33.3 %)
  of its reference. Symmetry makes "A -> B is a jump" the same as "B -> A is a jump", so a
  spike and the return from it are judged alike, and "confirms the suspect" and "is back
  near the old price" are the same test against two references.
- The reference is the last accepted price. The first price of a pair has none: it is
  accepted. A reference older than `window_seconds` (observation time) is stale: the
  price is accepted and becomes the reference.
- A price within the threshold of the reference is accepted. A jump is *held* as the
  pair's suspect: nothing is emitted.
- While a suspect is held, the next observation decides it. Within the threshold of the
  suspect: the suspect is confirmed, and both are emitted, the suspect first, each with
  its own event id and timestamp (a real crash is real). Otherwise the suspect is
  rejected (`implausible_jump`) and the observation is judged against the reference as
  above: accepted, or held as the new suspect.

Every observation is therefore emitted exactly once or rejected exactly once, except the
one currently held, which is neither until the next observation of its pair arrives.
A fault that repeats on two consecutive observations looks like a confirmed move: the
guard cannot tell them apart, only a cap (`max_amount`, exclusive) bounds those.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Context, Decimal
from functools import cached_property
from typing import Any, Generic

from typing_extensions import TypeVar

from coinlake.contract import ContractError, Landing, LandingRecord, parse_ts

#: The dead-letter reason of a rejected suspect.
IMPLAUSIBLE_JUMP = "implausible_jump"
DEFAULT_MAX_JUMP_PCT = 50.0
DEFAULT_WINDOW_SECONDS = 3600.0
#: The records a guard judges: `LandingRecord`s (the poller) or any `Landing` (the ticks' encoded ones).
R = TypeVar("R", bound=Landing, default=LandingRecord)


@dataclass(frozen=True)
class PlausibilityRule:
    """`max_jump_pct`: a move by more than the factor `1 + max_jump_pct/100` either way is a
    jump; `window_seconds`: a reference older than this (observation time) is stale."""

    max_jump_pct: float = DEFAULT_MAX_JUMP_PCT
    window_seconds: float = DEFAULT_WINDOW_SECONDS

    def __post_init__(self) -> None:
        if not self.max_jump_pct > 0:
            raise ValueError(f"max_jump_pct must be positive, got {self.max_jump_pct!r}")
        if not self.window_seconds > 0:
            raise ValueError(f"window_seconds must be positive, got {self.window_seconds!r}")

    @cached_property
    def factor(self) -> Decimal:
        return 1 + Decimal(repr(float(self.max_jump_pct))) / 100

    def within(self, a: Decimal, b: Decimal) -> bool:
        """`a` and `b` (positive) are within the threshold of each other (exact: no rounding)."""
        return max(a, b) <= _EXACT.multiply(min(a, b), self.factor)


#: Enough digits that a price (38 digits at most) times the factor is never rounded.
_EXACT = Context(prec=100)


@dataclass(frozen=True)
class Implausible(Generic[R]):
    """A rejected suspect and why (a one-line message naming both prices and the jump)."""

    record: R
    message: str

    @property
    def pair(self) -> str:
        return _pair(self.record)


@dataclass(frozen=True)
class Decision(Generic[R]):
    """What to do after one observation: `emit` these records now, in order (0, 1 or 2);
    dead-letter `rejected`; `held` is the observation itself when it is now the suspect."""

    emit: tuple[R, ...] = ()
    rejected: tuple[Implausible[R], ...] = ()
    held: R | None = None


@dataclass(frozen=True)
class _Anchor:
    amount: Decimal
    at: float  # epoch seconds of the observation
    record: dict[str, Any]  # event_id, amount, timestamp_utc: what the state keeps

    @classmethod
    def of(cls, record: Landing, price: Decimal | None = None, at: float | None = None) -> _Anchor:
        kept = {"event_id": record.event_id, "amount": record.amount, "timestamp_utc": record.timestamp_utc}
        return cls(
            Decimal(record.amount) if price is None else price,
            record.timestamp.timestamp() if at is None else at,
            kept,
        )


@dataclass
class _PairState(Generic[R]):
    last: _Anchor | None = None
    held: R | None = None


class PlausibilityGuard(Generic[R]):
    """Per-pair plausibility state and the rule above. Not thread-safe: one caller at a time."""

    def __init__(self, rule: PlausibilityRule | None = None, state: Mapping[str, Any] | None = None):
        self.rule = rule or PlausibilityRule()
        self._pairs: dict[str, _PairState[R]] = {}
        for pair, value in (state or {}).items():
            self._pairs[pair] = _load(pair, value)

    # ------------------------------------------------------------------ public
    def observe(self, record: R, price: Decimal | None = None, at: float | None = None) -> Decision[R]:
        """Judge one observation of its pair (observations of a pair in time order). A caller
        that parsed them already passes the record's `price` (`Decimal(amount)`) and `at`
        (`record.timestamp.timestamp()`), so they are not parsed again."""
        pair = _pair(record)
        st = self._pairs.get(pair)
        if st is None:
            st = self._pairs[pair] = _PairState()
        emit: list[R] = []
        rejected: list[Implausible[R]] = []
        if price is None:
            price = Decimal(record.amount)
        if st.held is not None:
            suspect, st.held = st.held, None
            if self.rule.within(price, Decimal(suspect.amount)):
                st.last = _Anchor.of(record, price, at)
                return Decision(emit=(suspect, record))
            rejected.append(Implausible(suspect, self._message(pair, st.last, suspect, record)))
        if at is None:
            at = record.timestamp.timestamp()
        if st.last is None or at - st.last.at > self.rule.window_seconds or self.rule.within(price, st.last.amount):
            st.last = _Anchor.of(record, price, at)
            emit.append(record)
            return Decision(emit=tuple(emit), rejected=tuple(rejected))
        st.held = record
        return Decision(rejected=tuple(rejected), held=record)

    def held(self, pair: str) -> R | None:
        """The suspect of `pair` waiting for its confirmation, if any."""
        st = self._pairs.get(pair)
        return st.held if st else None

    def state(self) -> dict[str, Any]:
        """The whole state as plain JSON values; `PlausibilityGuard(rule, state)` restores it."""
        out: dict[str, Any] = {}
        for pair, st in sorted(self._pairs.items()):
            out[pair] = {
                "last": dict(st.last.record) if st.last else None,
                "held": st.held.model_dump() if st.held else None,
            }
        return out

    # ----------------------------------------------------------------- private
    def _message(self, pair: str, last: _Anchor | None, suspect: Landing, nxt: Landing) -> str:
        if last is None:  # pragma: no cover - a suspect always has a reference
            return f"{pair} {suspect.amount} at {suspect.timestamp_utc} was not confirmed by {nxt.amount}"
        jump = (Decimal(suspect.amount) / last.amount - 1) * 100
        return (
            f"{pair} jumped from {last.record['amount']} ({last.record['timestamp_utc']}) to {suspect.amount} "
            f"({suspect.timestamp_utc}), {_pct(jump)}, more than the {self.rule.max_jump_pct:g} % allowed, "
            f"and the next observation, {nxt.amount} ({nxt.timestamp_utc}), did not confirm it"
        )


def _pair(record: Landing) -> str:
    return f"{record.crypto}-{record.currency}"


def _pct(value: Decimal) -> str:
    """`+99,900 %`, `-100 %`, `+62.5 %`."""
    v = float(value)
    return f"{v:+,.0f} %" if abs(v) >= 100 else f"{v:+.1f} %"


def _load(pair: str, value: Any) -> _PairState[Any]:
    """One pair's state from `state()`'s shape; ValueError on anything else."""
    try:
        last, held = value.get("last"), value.get("held")
        anchor = None
        if last is not None:
            amount = Decimal(str(last["amount"]))
            anchor = _Anchor(amount, parse_ts(last["timestamp_utc"]).timestamp(), dict(last))
        return _PairState(anchor, LandingRecord.from_dict(held) if held is not None else None)
    except (AttributeError, KeyError, TypeError, ArithmeticError, ContractError) as exc:
        raise ValueError(f"bad plausibility state of {pair}: {exc!r}") from None

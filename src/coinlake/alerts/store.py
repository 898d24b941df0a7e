"""Where rule state lives between evaluations: the local state DB, or DynamoDB on AWS.

A `RuleStore` keeps one versioned JSON document per rule. `save` is a conditional
write (compare-and-set on the version): it succeeds only if nobody saved the rule
since it was loaded, so two evaluators never silently overwrite each other's state.
Version 0 means "never saved".
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NamedTuple, Protocol

from coinlake.alerts.rules import RuleState
from coinlake.sqlite import ThreadConnections, transaction
from coinlake.state import StateStore


class Versioned(NamedTuple):
    state: RuleState
    version: int  # 0: never saved


class RuleStore(Protocol):
    def load(self, names: Iterable[str]) -> dict[str, Versioned]:
        """The state of each named rule (a fresh `RuleState()` at version 0 if none)."""
        ...

    def save(self, name: str, state: RuleState, expected_version: int) -> bool:
        """Store `state` as version `expected_version + 1` if the stored version is still
        `expected_version`; False (and nothing written) if someone else saved first."""
        ...


class LocalDb:
    """Thread-local connections to one SQLite file (the state DB), schema applied once."""

    def __init__(self, path: Path, schema: str):
        self.path = Path(path)
        self._cons = ThreadConnections(self.path, reopen=True)
        self.con.executescript(schema)

    @property
    def con(self) -> sqlite3.Connection:
        return self._cons.get()

    def tx(self):
        return transaction(self.con)

    def close(self) -> None:
        self._cons.close()


_RULES_SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_rule_states (
    name TEXT PRIMARY KEY, state TEXT NOT NULL, version INTEGER NOT NULL, updated_at REAL NOT NULL
);
"""


class StateRuleStore:
    """Rule state in the local state DB (table `alert_rule_states` next to the StateStore's)."""

    def __init__(self, state: StateStore | Path):
        self._db = LocalDb(state.path if isinstance(state, StateStore) else Path(state), _RULES_SCHEMA)

    def load(self, names: Iterable[str]) -> dict[str, Versioned]:
        out = {}
        for name in names:
            row = self._db.con.execute(
                "SELECT state, version FROM alert_rule_states WHERE name = ?", (name,)
            ).fetchone()
            out[name] = (
                Versioned(RuleState(), 0) if row is None else Versioned(RuleState.from_json(json.loads(row[0])), row[1])
            )
        return out

    def save(self, name: str, state: RuleState, expected_version: int) -> bool:
        encoded = json.dumps(state.to_json(), separators=(",", ":"))
        with self._db.tx() as con:
            row = con.execute("SELECT version FROM alert_rule_states WHERE name = ?", (name,)).fetchone()
            if (0 if row is None else row[0]) != expected_version:
                return False
            con.execute(
                "INSERT INTO alert_rule_states(name, state, version, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET state = excluded.state, version = excluded.version, "
                "updated_at = excluded.updated_at",
                (name, encoded, expected_version + 1, time.time()),
            )
        return True

    def close(self) -> None:
        self._db.close()


class DynamoRuleStore:
    """Rule state in a DynamoDB table: partition key `rule` (S); attributes `state` (S, JSON),
    `version` (N), `updated_at` (N). Writes are conditional on the version."""

    def __init__(self, table_name: str, client: Any = None):
        self.table_name = table_name
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3  # the `s3` extra; only the AWS shape needs it

            self._client = boto3.client("dynamodb")
        return self._client

    @staticmethod
    def create_table(client: Any, table_name: str) -> None:
        """The table's shape (what the Terraform module creates); for tests and tooling."""
        client.create_table(
            TableName=table_name,
            KeySchema=[{"AttributeName": "rule", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "rule", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )

    def load(self, names: Iterable[str]) -> dict[str, Versioned]:
        out = {}
        for name in names:
            item = self.client.get_item(TableName=self.table_name, Key={"rule": {"S": name}}, ConsistentRead=True).get(
                "Item"
            )
            if item is None:
                out[name] = Versioned(RuleState(), 0)
            else:
                out[name] = Versioned(RuleState.from_json(json.loads(item["state"]["S"])), int(item["version"]["N"]))
        return out

    def save(self, name: str, state: RuleState, expected_version: int) -> bool:
        item = {
            "rule": {"S": name},
            "state": {"S": json.dumps(state.to_json(), separators=(",", ":"))},
            "version": {"N": str(expected_version + 1)},
            "updated_at": {"N": f"{time.time():.3f}"},
        }
        kwargs: dict[str, Any] = {"TableName": self.table_name, "Item": item}
        if expected_version == 0:
            kwargs["ConditionExpression"] = "attribute_not_exists(#r)"
            kwargs["ExpressionAttributeNames"] = {"#r": "rule"}
        else:
            kwargs["ConditionExpression"] = "#v = :v"
            kwargs["ExpressionAttributeNames"] = {"#v": "version"}
            kwargs["ExpressionAttributeValues"] = {":v": {"N": str(expected_version)}}
        try:
            self.client.put_item(**kwargs)
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

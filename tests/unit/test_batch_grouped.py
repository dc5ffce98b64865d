"""``Batch.grouped``: a replay's statements of different tables may pass each other, so that
each query's statements run as one ``executemany``; those of one table keep their order, and a
statement whose tables are unknown is a wall nothing crosses."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from projections.engine import TOUCHES, Batch

USERS, ROLES, USERS_UPDATE = b"INSERT users", b"INSERT roles", b"UPDATE users"
UNKNOWN = b"UPDATE checkpoint"
TOUCHES.update({USERS: frozenset({"s.users"}), ROLES: frozenset({"s.roles"}),
                USERS_UPDATE: frozenset({"s.users"})})


def batch(*statements: tuple[bytes, int]) -> Batch:
    made = Batch()
    for query, value in statements:
        made.add(query, (value,))
    return made


def test_alternating_tables_become_one_run_per_query() -> None:
    made = batch((USERS, 1), (ROLES, 2), (USERS, 3), (ROLES, 4), (USERS, 5))
    assert made.grouped() == [(USERS, [(1,), (3,), (5,)]), (ROLES, [(2,), (4,)])]


def test_statements_of_one_table_keep_their_order() -> None:
    made = batch((USERS, 1), (USERS_UPDATE, 2), (USERS, 3))
    assert made.grouped() == [(USERS, [(1,)]), (USERS_UPDATE, [(2,)]), (USERS, [(3,)])]


def test_a_statement_of_unknown_tables_is_a_wall() -> None:
    made = batch((USERS, 1), (UNKNOWN, 2), (USERS, 3), (ROLES, 4))
    assert made.grouped() == [(USERS, [(1,)]), (UNKNOWN, [(2,)]), (USERS, [(3,)]),
                              (ROLES, [(4,)])]


def test_a_wall_repeated_at_once_is_one_run() -> None:
    made = batch((USERS, 1), (UNKNOWN, 2), (UNKNOWN, 3), (USERS, 4), (UNKNOWN, 5))
    assert made.grouped() == [(USERS, [(1,)]), (UNKNOWN, [(2,), (3,)]), (USERS, [(4,)]),
                              (UNKNOWN, [(5,)])]


@given(st.lists(st.tuples(st.sampled_from([USERS, ROLES, USERS_UPDATE, UNKNOWN]),
                          st.integers()), max_size=40))
def test_each_table_sees_its_statements_in_order(statements: list[tuple[bytes, int]]) -> None:
    sent = [(query, params[0]) for query, group in batch(*statements).grouped()
            for params in group]
    assert sorted(sent) == sorted(statements)  # every statement once

    def seen_by(table: str, order: list[tuple[bytes, int]]) -> list[tuple[bytes, int]]:
        return [(q, v) for q, v in order if table in TOUCHES.get(q, {table})]

    for table in ("s.users", "s.roles"):
        assert seen_by(table, sent) == seen_by(table, statements)

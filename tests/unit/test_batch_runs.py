"""``Batch.runs``: neighbouring statements of one query go together, in order; nothing else
is moved, and a statement whose row is wanted back stays alone."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from projections.engine import Batch

A, B, C = b"INSERT a", b"UPDATE b", b"DELETE c"


def batch(*statements: tuple[bytes, int], returns: tuple[int, ...] = ()) -> Batch:
    made = Batch()
    for index, (query, value) in enumerate(statements):
        made.add(query, (value,), returns=("t", value) if index in returns else None)
    return made


def test_neighbours_of_one_query_go_together_and_order_is_kept() -> None:
    runs = list(batch((A, 1), (A, 2), (B, 3), (A, 4), (C, 5), (C, 6)).runs())
    assert runs == [(0, A, [(1,), (2,)]), (2, B, [(3,)]), (3, A, [(4,)]),
                    (4, C, [(5,), (6,)])]


def test_a_returning_statement_stays_alone_only_when_rows_are_wanted() -> None:
    made = batch((A, 1), (A, 2), (A, 3), returns=(1,))
    assert list(made.runs(returning=True)) == [(0, A, [(1,)]), (1, A, [(2,)]),
                                               (2, A, [(3,)])]
    assert list(made.runs()) == [(0, A, [(1,), (2,), (3,)])]


def test_equal_queries_that_are_not_the_same_object_go_together() -> None:
    query = b"INSERT x"
    other = bytes(bytearray(query))  # equal, another object
    assert other is not query
    assert [len(p) for _, _, p in batch((query, 1), (other, 2)).runs()] == [2]


@given(st.lists(st.tuples(st.sampled_from([A, B, C]), st.integers()), max_size=30),
       st.booleans())
def test_every_statement_is_sent_once_in_its_order(statements: list[tuple[bytes, int]],
                                                   returning: bool) -> None:
    made = batch(*statements, returns=tuple(range(0, len(statements), 3)))
    flat = [(query, params) for _, query, group in made.runs(returning=returning)
            for params in group]
    assert flat == [(query, (value,)) for query, value in statements]

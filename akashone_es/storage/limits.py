"""Bounds of every input: text lengths, list sizes, money and quantities, free-form JSON.

The read tables store most text as unbounded ``text`` and amounts as ``bigint`` paise, so the
database would accept (or overflow on) almost anything; these limits are what the values mean.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Annotated, Any, Final

import orjson
from pydantic import AfterValidator, AwareDatetime, BeforeValidator
from pydantic_core import PydanticCustomError

from akashone_es.context import EARLIEST_EVENT, MAX_IP, MAX_USER_AGENT, OFFSET_MAX

# -- text (characters) ---------------------------------------------------------------------
CODE_MAX: Final = 64  # machine codes and kinds: resource types, units, metrics, error codes
NAME_MAX: Final = 200  # names of people, organizations, plans, resources, address lines
DESCRIPTION_MAX: Final = 2000  # descriptions, notes, messages meant to be read
EMAIL_MAX: Final = 254  # RFC 5321 path limit
URL_MAX: Final = 2048
ID_MAX: Final = 200  # an external system's id (gateway, CloudStack, a resource)
SECRET_MAX: Final = 255  # tokens, TOTP secrets, verification codes (invitation_token varchar)
IP_ADDRESS_MAX: Final = MAX_IP  # the longest textual IPv6 (with an embedded IPv4)
USER_AGENT_MAX: Final = MAX_USER_AGENT  # the same bound as the acting context's
GSTIN_MAX: Final = 15  # a GSTIN is exactly 15 characters (checked further by its own rule)

# -- integers and money --------------------------------------------------------------------
INT4_MAX: Final = 2**31 - 1  # integer columns
BIGINT_MAX: Final = 2**63 - 1
#: the largest paise amount written as such (bigint columns, and orjson encodes 64-bit ints)
PAISE_MAX: Final = 2**62
#: a quantity of anything metered or sold on a line, and its precision
QUANTITY_MAX: Final = 10**9
QUANTITY_PLACES: Final = 6
#: paise per unit (Rs 1 crore per unit), and its precision (metering rates are fractional)
UNIT_PRICE_MAX: Final = 10**9
UNIT_PRICE_PLACES: Final = 6
#: one invoice line, or one usage record's total cost: Rs 10 lakh crore. Quantity x unit price
#: alone could reach 10^18, so this product is checked on its own
LINE_AMOUNT_MAX: Final = 10**15
#: lines on one invoice; generate_invoice makes one line per resource type
INVOICE_LINES_MAX: Final = 500
#: why no invoice can overflow: its subtotal is at most 500 x 10^15 = 5 x 10^17 paise; GST adds
#: at most 28 % and the round-off at most 50 paise, so the total stays under 6.5 x 10^17, seven
#: times below PAISE_MAX (4.6 x 10^18) and fourteen below bigint (9.2 x 10^18)
INVOICE_TOTAL_MAX: Final = INVOICE_LINES_MAX * LINE_AMOUNT_MAX * 128 // 100 + 50
#: usage records billed by one generated invoice, and ids given in one call
USAGE_RECORDS_PER_INVOICE_MAX: Final = 10_000
IDS_MAX: Final = USAGE_RECORDS_PER_INVOICE_MAX
#: GST rates are percentages with two places (numeric(5,2) columns)
RATE_MAX: Final = 100
RATE_PLACES: Final = 2

# -- moments -------------------------------------------------------------------------------
#: the instants an input may name, in UTC (the end exclusive). PostgreSQL stores years 4713 BC
#: to 294276 AD but Python reads back only 1 to 9999: an aware time such as 0001-01-01T00:00
#: +14:00 (1 BC in UTC) was stored and then made every read of its row fail. Nothing here
#: (billing periods, due dates, coupons, logins) is meaningful outside these years
EARLIEST: Final = EARLIEST_EVENT
LATEST: Final = datetime(3000, 1, 1, tzinfo=UTC)
MOMENT_RULE: Final = "must fall between 1970-01-01 and 2999-12-31 (UTC)"


def moment_problem(value: datetime) -> str | None:
    """Why ``value`` cannot be an input's moment (None if it can)."""
    offset = value.utcoffset()
    if offset is None:
        return "must be a date-time with a time zone"
    if abs(offset) > OFFSET_MAX:
        return "must have a UTC offset between -14:00 and +14:00"
    try:
        utc = value.astimezone(UTC)
    except OverflowError:  # before year 1 or after 9999 in UTC
        return MOMENT_RULE
    return None if EARLIEST <= utc < LATEST else MOMENT_RULE


def bound_problem(value: datetime) -> str | None:
    """Why ``value`` cannot bound a read (None if it can): a read stores nothing, so any
    year PostgreSQL and Python both hold will do (an open bound such as 9999-12-31)."""
    problem = moment_problem(value)
    if problem != MOMENT_RULE:
        return problem
    try:
        value.astimezone(UTC)
    except OverflowError:
        return "must fall between the years 1 and 9999 in UTC"
    return None


def day_problem(value: date) -> str | None:
    """Why ``value`` cannot be an input's day (None if it can)."""
    if isinstance(value, datetime):
        return "must be a date (YYYY-MM-DD), not a date-time"
    return None if EARLIEST.date() <= value < LATEST.date() else MOMENT_RULE


def _refusing(problem_of: Callable[[datetime], str | None]) -> Callable[[datetime], datetime]:
    """A validator passing a date-time ``problem_of`` finds nothing wrong with."""

    def validate(value: datetime) -> datetime:
        problem = problem_of(value)
        if problem is not None:
            raise PydanticCustomError("moment", problem)
        return value

    return validate


def _not_a_number(value: Any) -> Any:
    """A date-time is given as one (or ISO 8601 text): a number would be read as a Unix time,
    seconds or milliseconds as its size suggests, which a dump's 42 is not."""
    if isinstance(value, int | float) or (isinstance(value, str)
                                          and NUMERIC_TEXT.fullmatch(value) is not None):
        raise PydanticCustomError("moment", "must be an ISO 8601 date-time (with its UTC "
                                  "offset), not a number")
    return value


#: text pydantic would read as a Unix time ('1700000000', ' -12.5 ')
NUMERIC_TEXT = re.compile(r"\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*")


#: an aware date-time within ``EARLIEST``..``LATEST`` and ``OFFSET_MAX``: every input's
Moment = Annotated[AwareDatetime, BeforeValidator(_not_a_number),
                   AfterValidator(_refusing(moment_problem))]
#: a date-time bounding a read (filters): aware, any year both PostgreSQL and Python hold
Bound = Annotated[AwareDatetime, BeforeValidator(_not_a_number),
                  AfterValidator(_refusing(bound_problem))]


# -- free-form JSON (activity and usage metadata, gateway responses) -----------------------
JSON_DEPTH_MAX: Final = 8  # nested objects and arrays
JSON_NODES_MAX: Final = 1000  # values in all, at every level
JSON_KEY_MAX: Final = 100
JSON_STRING_MAX: Final = DESCRIPTION_MAX
JSON_BYTES_MAX: Final = 16 * 1024  # encoded as UTF-8 JSON
GATEWAY_JSON_BYTES_MAX: Final = 64 * 1024  # a gateway's raw answer, before it is trimmed


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as PostgreSQL text or jsonb (None if it can)."""
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")  # in C: fails exactly on lone surrogates
    except UnicodeEncodeError:
        return "must not contain lone surrogates (not valid Unicode)"
    return None


def _shown(key: str) -> str:
    """A key as an error may name it: escaped if it is itself the problem."""
    return key.encode("unicode_escape").decode("ascii") if text_problem(key) else key


def _fail(path: list[str | int], rule: str) -> PydanticCustomError:
    return PydanticCustomError("json_value", "{path}: {rule}",
                               {"path": ".".join(str(p) for p in path), "rule": rule})


class _Walk:
    """One pass over a JSON value: types, text, numbers, depth and node count."""

    def __init__(self) -> None:
        self.nodes = 0

    def value(self, value: Any, path: list[str | int]) -> None:
        self.nodes += 1
        if self.nodes > JSON_NODES_MAX:
            raise _fail(path, f"more than {JSON_NODES_MAX} values in all")
        if len(path) > JSON_DEPTH_MAX:
            raise _fail(path, f"nested deeper than {JSON_DEPTH_MAX} levels")
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise _fail(path, "object keys must be strings")
                self.text(key, [*path, _shown(key[:JSON_KEY_MAX])], JSON_KEY_MAX, "key ")
                self.value(item, [*path, key])
        elif isinstance(value, list | tuple):
            for index, item in enumerate(value):
                self.value(item, [*path, index])
        else:
            self.scalar(value, path)

    def scalar(self, value: Any, path: list[str | int]) -> None:
        if value is None or isinstance(value, bool):
            return
        if isinstance(value, int):
            # orjson encodes at most 64 bits; jsonb and bigint columns take the same range
            if not -BIGINT_MAX - 1 <= value <= BIGINT_MAX:
                raise _fail(path, "integer out of the 64-bit range")
        elif isinstance(value, float):
            if not math.isfinite(value):  # jsonb refuses NaN and infinities
                raise _fail(path, "must be a finite number")
        elif isinstance(value, str):
            self.text(value, path, JSON_STRING_MAX)
        else:
            raise _fail(path, f"not a JSON value ({type(value).__name__}): use a string, "
                              "number, boolean, null, list or object")

    @staticmethod
    def text(value: str, path: list[str | int], limit: int, what: str = "") -> None:
        problem = text_problem(value)
        if problem:
            raise _fail(path, what + problem)
        if len(value) > limit:
            raise _fail(path, f"{what}longer than {limit} characters")


def check_json(max_bytes: int = JSON_BYTES_MAX) -> Callable[[Any], Any]:
    """A validator: ``value`` is JSON that every projection can store (jsonb), within bounds;
    a failure names the path inside the field (``metadata.a.0.b``) and the rule."""

    def validate(value: Any) -> Any:
        if value is None:
            return None
        _Walk().value(value, [])
        size = len(orjson.dumps(value))
        if size > max_bytes:
            raise _fail([], f"{size} bytes encoded, more than {max_bytes}")
        return value

    return validate


#: a free-form JSON object field (activity or usage metadata)
JsonObject = Annotated[dict[str, Any], AfterValidator(check_json())]

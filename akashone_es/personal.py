"""Personal data in the log, encrypted under keys that can be destroyed (crypto-shredding).

Each person's data is encrypted in the events under a key of its own, before the event is
stored, hashed and sealed; destroying the key erases the data everywhere the log reaches
(history, exports, snapshots, rebuilt read tables) while the hash chain, which covers the
ciphertext, still verifies. What is personal, and under whose key:

- a user's username and email (``person:<user id>``); an invitation's email
  (``person:<team member id>``); a billing address's lines and postal code
  (``person:<address id>``); the username, IP address and user agent of an activity
  (``person:<its user>``) and the IP and user agent in every event's metadata when a user acted
  (``person:<actor id>``);
- the buyer's address on an invoice (``fy:<financial year>``): a tax invoice must keep it for
  the GST retention period, so it is erased by the year's retention sweep, not on request.

An encrypted value is ``pii:v1:<subject>:<base64 of nonce + AES-256-GCM ciphertext>``, the
subject as additional data. Keys live in ``akashone_subject_keys``, each wrapped (AES-GCM)
under a key derived from the application's secret key; a new key is inserted in the same
transaction as the first event that uses it, and destroyed in the same transaction as the
erasure event. A value whose key was destroyed reads as ``MARKER``.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import psycopg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from psycopg import sql

from akashone_es.errors import ConfigurationError
from akashone_es.gst import financial_year
from akashone_es.logging import get_logger

log = get_logger(__name__)
MARKER = "[erased]"
PREFIX = "pii:v1:"
PREFIX_BYTES = PREFIX.encode()
#: a subject key as stored: AES-GCM under a key derived from AKASHONE_SECRET_KEY, bound to
#: its subject (a key moved to another subject's row does not open)
WRAPPED = "k1:"
KEYS_TABLE = "akashone_subject_keys"
KEYS_DDL = sql.SQL(
    "CREATE TABLE IF NOT EXISTS {} (subject text PRIMARY KEY, sealed_key text,"
    " created_at timestamptz NOT NULL DEFAULT now(), destroyed_at timestamptz,"
    " reason text)").format(sql.Identifier("public", KEYS_TABLE))
INSERT_KEY = sql.SQL("INSERT INTO {} (subject, sealed_key) VALUES (%s, %s)").format(
    sql.Identifier("public", KEYS_TABLE)).as_bytes(None)
DESTROY_KEY = sql.SQL(
    "INSERT INTO {t} (subject, sealed_key, destroyed_at, reason) VALUES (%s, NULL, now(), %s)"
    " ON CONFLICT (subject) DO UPDATE SET sealed_key = NULL, destroyed_at = now(),"
    " reason = EXCLUDED.reason").format(t=sql.Identifier("public", KEYS_TABLE)).as_bytes(None)
#: a destroyed key stays destroyed: a second destruction (two erasures of one person racing,
#: both past the check that it was not erased yet) or a key written back into a destroyed row
#: is refused by the database, and the save that tried it writes nothing
DESTROYED_ONCE = "akashone_subject_keys_destroyed_once"
DESTROYED_ONCE_DDL = sql.SQL("""
    CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql
        SET search_path = pg_catalog AS $f$ BEGIN
        RAISE EXCEPTION USING ERRCODE = 'unique_violation', CONSTRAINT = {name},
            TABLE = TG_TABLE_NAME,
            MESSAGE = format('the key of %s is destroyed already', OLD.subject);
    END $f$;
    REVOKE ALL ON FUNCTION {fn}() FROM PUBLIC;
    DO $$ BEGIN
        -- created only when missing: CREATE TRIGGER locks the table against writers
        IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = {table_name}::regclass
                       AND tgname = {name}) THEN
            CREATE TRIGGER {trigger} BEFORE UPDATE ON {table}
                FOR EACH ROW WHEN (OLD.sealed_key IS NULL) EXECUTE FUNCTION {fn}();
        END IF;
    END $$""").format(
    fn=sql.Identifier("public", DESTROYED_ONCE), name=sql.Literal(DESTROYED_ONCE),
    trigger=sql.Identifier(DESTROYED_ONCE), table=sql.Identifier("public", KEYS_TABLE),
    table_name=sql.Literal(f"public.{KEYS_TABLE}"))
SELECT_KEY = sql.SQL("SELECT subject, sealed_key FROM {} WHERE subject = ANY(%s)").format(
    sql.Identifier("public", KEYS_TABLE))
SELECT_ALL = sql.SQL("SELECT subject, sealed_key FROM {}").format(
    sql.Identifier("public", KEYS_TABLE))
WRONG_KEY = ("{source} does not open the keys of personal data in this database: it is not "
             "the key they were sealed with (set AKASHONE_SECRET_KEY to that key, the same "
             "everywhere)")
#: a cached key is trusted this long: another process's erasure reaches this one's cache then
CACHE_SECONDS = 60.0

_IDENTITY = "akashone_es.domain.identity:"
_BILLING = "akashone_es.domain.billing:"
#: a GSTIN names its holder's PAN: a proprietor's is personal data
_ADDRESS = ("address_line1", "address_line2", "postal_code", "gst_number")
#: event topic -> (whose data: the event's own aggregate, a field naming the user, or the
#: financial year of the event; the fields, dotted one level into a dict)
PERSONAL: dict[str, tuple[str, tuple[str, ...]]] = {
    _IDENTITY + "User.Registered": ("self", ("username", "email", "gst_number")),
    _IDENTITY + "User.Updated": ("self", ("changes.username", "changes.email",
                                          "changes.gst_number")),
    _IDENTITY + "User.Imported": ("self", ("username", "email", "gst_number")),
    _IDENTITY + "TeamMember.Invited": ("self", ("email",)),
    _IDENTITY + "TeamMember.Imported": ("self", ("email",)),
    _IDENTITY + "TeamMember.Updated": ("self", ("changes.email",)),
    _IDENTITY + "Activity.Recorded": ("user_id", ("username", "ip_address", "user_agent")),
    _IDENTITY + "Activity.Imported": ("user_id", ("username", "ip_address", "user_agent")),
    _BILLING + "BillingAddress.Created": ("self", tuple(f"fields.{f}" for f in _ADDRESS)),
    _BILLING + "BillingAddress.Imported": ("self", tuple(f"fields.{f}" for f in _ADDRESS)),
    _BILLING + "BillingAddress.Updated": ("self", tuple(f"changes.{f}" for f in _ADDRESS)),
    _BILLING + "PaymentMethod.Created": ("self", ("fields.upi_id",)),
    _BILLING + "PaymentMethod.Imported": ("self", ("fields.upi_id",)),
    _BILLING + "PaymentMethod.Updated": ("self", ("changes.upi_id",)),
    _BILLING + "Invoice.Drafted": ("fy", ("buyer.name", "buyer.address_line1",
                                          "buyer.postal_code", "buyer.gst_number")),
    _BILLING + "Invoice.Imported": ("fy", ("buyer.name", "buyer.address_line1",
                                           "buyer.postal_code", "buyer.gst_number")),
    # the GSTIN the place of supply was decided on, under the key of the year of the issue
    # (the invoice's own year: ``invoices.fy``)
    _BILLING + "Invoice.Issued": ("fy", ("buyer_gstin",)),
}
#: a snapshot's state holds the same data as the aggregate's events (by aggregate topic)
SNAPSHOT_PERSONAL: dict[str, tuple[str, ...]] = {
    _IDENTITY + "User": ("state.username", "state.email", "state.gst_number"),
    _IDENTITY + "TeamMember": ("state.email",),
}
SNAPSHOT_TOPIC = "akashone_es.domain.base:Snapshot"
#: the erasure event: storing it destroys its subjects' keys in the same transaction
ERASURE_TOPIC = "akashone_es.domain.operations:Erasure.Recorded"
METADATA_FIELDS = ("ip", "user_agent")


def person(subject_id: Any) -> str:
    return f"person:{subject_id}"


def erased_people(subjects: list[str]) -> list[str]:
    """The record ids of an erasure's ``person:`` subjects (its years are not records)."""
    return [s.removeprefix("person:") for s in subjects if s.startswith("person:")]


def retention(fy: str) -> str:
    return f"fy:{fy}"


def erased_years(subjects: list[str]) -> list[str]:
    """The financial years of an erasure's ``fy:`` subjects (a retention sweep's)."""
    return [s.removeprefix("fy:") for s in subjects if s.startswith("fy:")]


def redacted_key(row_id: Any) -> str:
    """A unique key for an erased name or address (real keys hold no spaces)."""
    return f"{MARKER} {row_id}"


def retention_end(fy: str) -> date:
    """The last day GST records of ``fy`` must be kept (CGST Act s.36): 72 months after the
    annual return's due date, 31 December after the year ends. FY 2026-27 -> 2033-12-31."""
    ends = int(fy[:4]) + 1
    return date(ends + 6, 12, 31)


class KeyRing:
    """Subject keys: created with the first event that needs one, cached, destroyed.

    The shared cache holds committed keys only. A key made by a save lives in that save's
    own ``_Save`` until it commits (another thread's save for the same new subject makes its
    own; the database's primary key lets one of them commit, the other fails and retries)."""

    def __init__(self, master: str, connect: Callable[[], Any],
                 source: str = "AKASHONE_SECRET_KEY") -> None:
        # subject keys are wrapped with AES-GCM under a key derived from the secret key
        # (Fernet would cost ~5x more per key, and a rebuild opens every key once)
        self._wrap = AESGCM(hashlib.sha256(b"akashone:subject-keys:" + master.encode()
                                           ).digest())
        self._connect = connect  # a context manager giving a pooled connection
        self._source = source  # where the key came from, as an error names it
        #: subject -> (cipher or None when destroyed, when cached)
        self._keys: dict[str, tuple[AESGCM | None, float]] = {}
        self._whole = False  # every key of the database is cached (``preload``)

    # -- writing ---------------------------------------------------------------------------
    def encrypt(self, subject: str, value: str, *, create: bool = True,
                fresh: bool = False) -> str:
        """``value`` sealed under ``subject``'s key; the marker when that key was destroyed
        (an erased person stays erased). Without a key: one is made when ``create`` (in the
        save's transaction; ``fresh``: the subject is a new aggregate, so the database is not
        asked), else the value stays as it is (a snapshot of data recorded in clear)."""
        found, key = self._key(subject, create=create, fresh=fresh)
        if key is None:
            if found:
                current = _save.get()
                if current is not None:
                    current.redacted = True
                return MARKER
            return value
        nonce = os.urandom(12)
        sealed = key.encrypt(nonce, value.encode(), subject.encode())
        return f"{PREFIX}{subject}:{base64.b64encode(nonce + sealed).decode()}"

    # -- reading ---------------------------------------------------------------------------
    def decrypt(self, value: str) -> str:
        """The clear value; the marker when its key was destroyed (or never kept), or when
        the value is not one this key ring sealed (tampered with, or mistyped as one)."""
        subject, _, payload = value[len(PREFIX):].rpartition(":")
        try:
            _, key = self._key(subject, create=False, fresh=False)
            if key is None:
                return MARKER
            raw = base64.b64decode(payload, validate=True)
            return key.decrypt(raw[:12], raw[12:], subject.encode()).decode()
        except (InvalidTag, ValueError):  # binascii.Error is a ValueError
            log.error("personal.cannot_open", subject=subject[:80])
            return MARKER

    def _key(self, subject: str, *, create: bool, fresh: bool) -> tuple[bool, AESGCM | None]:
        """(whether the subject has a key row, its key: None when destroyed or absent)."""
        current = _save.get()
        if current is not None and subject in current.made:
            return True, current.made[subject]
        cached = self._keys.get(subject)
        now = time.monotonic()
        if cached is not None and (cached[0] is None or self._whole
                                   or now - cached[1] < CACHE_SECONDS):
            return True, cached[0]
        if not fresh and not self._whole:  # a whole cache knows the subject has no key
            # every key at once only into an empty cache (a replay reads them all); a warm
            # process asks for the one it lacks, not the whole table each minute
            self._load([subject], bulk=not create and not self._keys)
            cached = self._keys.get(subject)
            if cached is not None:
                return True, cached[0]
        if not create:
            return False, None
        if current is None:
            raise RuntimeError("a new subject key outside a save")  # pragma: no cover
        key = AESGCM.generate_key(bit_length=256)
        cipher = current.made[subject] = AESGCM(key)
        nonce = os.urandom(12)
        wrapped = nonce + self._wrap.encrypt(nonce, key, subject.encode())
        current.statements.append(
            (INSERT_KEY, (subject, WRAPPED + base64.b64encode(wrapped).decode())))
        return True, cipher

    def bound_to(self, conn: psycopg.Connection[Any]) -> KeyRing:
        """A key ring with the same secret that reads keys through ``conn``, inside its
        transaction, with a cache of its own."""
        ring = copy.copy(self)
        ring._connect = lambda: nullcontext(conn)
        ring._keys, ring._whole = {}, False
        return ring

    def preload(self) -> None:
        """Cache every key the database holds, before a pass over the whole log by the one
        writer of keys meanwhile: the cache is then the whole truth (it does not expire, and
        a subject not in it has no key). For a ring of its own (``bound_to``) only."""
        self._load([], bulk=True)
        self._whole = True

    def _settle(self, done: _Save) -> None:
        """After a save committed: its keys are committed; its destroyed keys are gone."""
        now = time.monotonic()
        for subject, cipher in done.made.items():
            self._keys[subject] = (cipher, now)
        for query, params in done.statements:
            if query is DESTROY_KEY:
                self._keys[params[0]] = (None, now)

    def _load(self, subjects: list[str], *, bulk: bool) -> None:
        with self._connect() as conn:
            if bulk:
                rows = conn.execute(SELECT_ALL).fetchall()
            else:
                rows = conn.execute(SELECT_KEY, (subjects,)).fetchall()
        stamp = time.monotonic()
        for row in rows:
            subject, sealed = (row["subject"], row["sealed_key"]) if isinstance(
                row, dict) else row
            self._keys[subject] = (self._open(subject, sealed) if sealed else None, stamp)

    def _open(self, subject: str, sealed: str) -> AESGCM:
        try:
            raw = base64.b64decode(sealed.removeprefix(WRAPPED))
            return AESGCM(self._wrap.decrypt(raw[:12], raw[12:], subject.encode()))
        except (InvalidTag, ValueError):  # never read a wrong key's failure as an erasure
            raise ConfigurationError(WRONG_KEY.format(source=self._source)) from None

    def check(self) -> None:
        """Refuse to start with a secret key that does not open the subject keys (every
        person would read as erased, and a rebuild would write it so)."""
        with self._connect() as conn:
            found = conn.execute("SELECT to_regclass(%s) IS NOT NULL AS present",
                                 (f"public.{KEYS_TABLE}",)).fetchone()
            if not (found["present"] if isinstance(found, dict) else found[0]):
                return
            row = conn.execute(sql.SQL("SELECT subject, sealed_key FROM {} WHERE sealed_key IS"
                                       " NOT NULL LIMIT 1").format(
                                           sql.Identifier("public", KEYS_TABLE))).fetchone()
        if row is not None:
            self._open(*((row["subject"], row["sealed_key"]) if isinstance(row, dict) else row))


@dataclass
class _Save:
    """One save's key work: the statements its transaction runs, the keys it made (trusted
    by this save only until it commits), whether a destroyed key blanked a value."""

    statements: list[tuple[bytes, tuple[Any, ...]]] = field(default_factory=list)
    made: dict[str, AESGCM] = field(default_factory=dict)
    redacted: bool = False


_save: ContextVar[_Save | None] = ContextVar("akashone_subject_keys", default=None)


@contextmanager
def saving(keyring: KeyRing | None) -> Iterator[_Save]:
    """The key work of one save; its keys reach the shared cache only if it commits."""
    current = _Save()
    token = _save.set(current)
    try:
        yield current
        if keyring is not None:  # reached only when the save committed
            keyring._settle(current)  # the key ring's own save protocol
    finally:
        _save.reset(token)


def destroy_in_save(subjects: list[str], reason: str) -> None:
    """Destroy ``subjects``' keys in the transaction of the save in progress."""
    current = _save.get()
    if current is None:
        raise RuntimeError("keys are destroyed inside a save")  # pragma: no cover
    current.statements.extend((DESTROY_KEY, (subject, reason)) for subject in subjects)


# -- the mapper's side ----------------------------------------------------------------------
def seal_state(keyring: KeyRing, topic: str, originator_id: Any, version: int,
               state: dict[str, Any]) -> None:
    """Encrypt, in place, the personal fields of an event's state about to be stored (and,
    for an erasure, destroy its subjects' keys in the same transaction)."""
    if topic == ERASURE_TOPIC:
        destroy_in_save(list(state["subjects"]), str(state["reason"]))
    spec, create = PERSONAL.get(topic), True
    if spec is None and topic == SNAPSHOT_TOPIC:  # keys are made by events, not snapshots
        fields = SNAPSHOT_PERSONAL.get(state.get("topic", ""))
        spec, create = (("self", fields) if fields else None), False
    if spec is not None:
        whose, fields = spec
        subject = _subject(whose, originator_id, state)
        if subject is not None:
            # a new aggregate's own subject cannot have a key yet
            fresh = create and whose == "self" and version == 1
            for path in fields:
                _seal_path(keyring, subject, state, path, create=create, fresh=fresh)
    meta = state.get("metadata")
    whom = metadata_person(topic, originator_id, state.get)
    if isinstance(meta, dict) and whom is not None:
        for name in METADATA_FIELDS:
            value = meta.get(name)
            if isinstance(value, str):
                meta[name] = keyring.encrypt(person(whom), value, create=create)


def metadata_person(topic: str, originator_id: Any, field: Callable[[str], Any]) -> Any:
    """Whose IP address and user agent an event's metadata holds, or None: the acting
    user's; in a system context (a sign-up, a login before there is an actor), the person
    the event is about (its own aggregate, or the user it names); no one's for an event
    about no person. ``field``: reads a field of the event's state."""
    meta = field("metadata")
    if isinstance(meta, dict) and meta.get("actor_id"):
        return meta["actor_id"]
    spec = PERSONAL.get(topic)
    if spec is None or spec[0] == "fy":
        return None
    return originator_id if spec[0] == "self" else (field(spec[0]) or None)


def _subject(whose: str, originator_id: Any, state: dict[str, Any]) -> str | None:
    if whose == "self":
        return person(originator_id)
    if whose == "fy":
        return retention(financial_year(datetime.fromisoformat(state["timestamp"])))
    owner = state.get(whose)
    return person(owner) if owner else None


def _seal_path(keyring: KeyRing, subject: str, state: dict[str, Any], path: str, *,
               create: bool, fresh: bool) -> None:
    holder, name = _at(state, path)
    value = holder.get(name) if holder is not None else None
    # always: a value that looks sealed is sealed again; the marker is no one's data (an
    # erased person brought back from the way back to AkashOne) and needs no key
    if isinstance(value, str) and value != MARKER:
        holder[name] = keyring.encrypt(subject, value, create=create, fresh=fresh)


def seal_clear(keyring: KeyRing, topic: str, originator_id: Any, state: dict[str, Any]
               ) -> tuple[int, int]:
    """Encrypt, in place, the personal values of a stored event's state that are in clear
    (written before personal data was encrypted), each under its person's key (made when
    the person has none yet, inside the current save); a person whose key was destroyed
    gets the marker. Returns (values encrypted, values erased)."""
    sealed = erased = 0
    spec = PERSONAL.get(topic)
    for path in clear_fields(topic, state, originator_id):
        if path.startswith("metadata."):
            subject: str | None = person(metadata_person(topic, originator_id, state.get))
        else:
            subject = _subject(spec[0], originator_id, state) if spec else None
        if subject is None:
            continue  # no person to seal it under (e.g. an activity of no user)
        holder, name = _at(state, path)
        holder[name] = keyring.encrypt(subject, holder[name])
        if holder[name] == MARKER:
            erased += 1
        else:
            sealed += 1
    return sealed, erased


def clear_fields(topic: str, state: dict[str, Any], originator_id: Any) -> list[str]:
    """The personal fields of a stored event's state that hold clear text (written before
    personal data was encrypted)."""
    someone = metadata_person(topic, originator_id, state.get) is not None
    found = []
    for path in personal_paths(topic, state):
        if path.startswith("metadata.") and not someone:
            continue  # a system context about no person
        holder, name = _at(state, path)
        value = holder.get(name) if holder is not None else None
        if isinstance(value, str) and not value.startswith(PREFIX) and value != MARKER:
            found.append(path)
    return found


def personal_paths(topic: str, state: dict[str, Any]) -> tuple[str, ...]:
    """Where an event of ``topic`` keeps personal data (dotted one level into a dict)."""
    inner = str(state.get("topic", "")) if topic == SNAPSHOT_TOPIC else ""
    return _paths(topic, inner)


@functools.lru_cache(maxsize=1024)
def _paths(topic: str, inner: str) -> tuple[str, ...]:
    """``personal_paths`` of a topic (and a snapshot's inner topic): worked out once each,
    every replayed event asks."""
    spec = PERSONAL.get(topic)
    paths = list(spec[1]) if spec else []
    if topic == SNAPSHOT_TOPIC:
        paths += SNAPSHOT_PERSONAL.get(inner, ())
    return (*paths, *(f"metadata.{name}" for name in METADATA_FIELDS))


def _at(state: dict[str, Any], path: str) -> tuple[Any, str]:
    """The dict holding ``path``'s last name (or None), and that name."""
    holder: Any = state
    *parents, name = path.split(".")
    for parent in parents:
        holder = holder.get(parent) if isinstance(holder, dict) else None
    return (holder if isinstance(holder, dict) else None), name


def open_state(keyring: KeyRing, topic: str, data: dict[str, Any]) -> dict[str, Any]:
    """Decrypt, in place, the personal fields of a decoded event's state (only there: a
    value elsewhere that merely looks sealed is left as it is)."""
    for path in personal_paths(topic, data):
        holder, name = _at(data, path)
        value = holder.get(name) if holder is not None else None
        if isinstance(value, str) and value.startswith(PREFIX):
            holder[name] = keyring.decrypt(value)
    return data


def ensure_keys_table(conn: psycopg.Connection[Any], app_role: str | None) -> None:
    """The keys table (not append-only: erasure destroys keys); the application may read,
    insert and destroy keys, never delete rows (a destroyed key keeps its row)."""
    conn.execute(KEYS_DDL)
    conn.execute(DESTROYED_ONCE_DDL)
    if app_role:
        conn.execute(sql.SQL("GRANT SELECT, INSERT, UPDATE ON {} TO {}").format(
            sql.Identifier("public", KEYS_TABLE), sql.Identifier(app_role)))

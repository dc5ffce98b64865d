"""Identity keys and script rules: look-alike usernames and emails are one identity."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import orjson
import pytest
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic
from hypothesis import given
from hypothesis import strategies as st

from akashone_es.application import OrjsonTranscoder, PydanticMapper
from akashone_es.domain.confusables import identity_key, mixed_script, scripts_in
from akashone_es.domain.identity import TeamMember, User
from akashone_es.errors import ValidationError
from akashone_es.storage.inputs import (
    AcceptInvitation,
    InsertTeamMember,
    InsertUser,
    UpdateTeamMember,
    UpdateUser,
    is_bcrypt_hash,
    parse,
)

CYRILLIC_A = "\u0430"
FULLWIDTH_ALICE = "\uff41\uff4c\uff49\uff43\uff45"  # alice in fullwidth letters
RUPEE = "\u20b9"  # three bytes in UTF-8
USER: dict[str, Any] = {"username": "alice", "email": "alice@a.in", "password": "long-enough-1"}


def rule_for(model: type[Any], data: dict[str, Any], field: str) -> str:
    """The rule the ValidationError names for ``field`` when ``data`` is parsed."""
    with pytest.raises(ValidationError) as info:
        parse(model, data)
    [rule] = [e["rule"] for e in info.value.errors if e["field"] == field]
    return rule


class TestIdentityKey:
    @pytest.mark.parametrize("variant", ["Alice", "ALICE", FULLWIDTH_ALICE,
                                         "\uff41\uff2c\uff49\uff23\uff45"])
    def test_case_and_width_variants_share_one_key(self, variant: str) -> None:
        """Case and fullwidth forms of a name have the key of its plain lower-case form."""
        assert identity_key("alice") == identity_key(variant)

    def test_full_case_folding_and_compatibility_forms(self) -> None:
        """ß folds to ss and the fi ligature to fi, as NFKC_Casefold does."""
        assert ("strasse@a.in", "fi") == (identity_key("Straße@a.in"), identity_key("\ufb01"))

    def test_other_scripts_keep_distinct_keys(self) -> None:
        """A Cyrillic a is not folded into a Latin a (that is the script rule's job)."""
        assert identity_key(CYRILLIC_A + "lice") != identity_key("alice")

    @given(st.text(max_size=20))
    def test_key_is_stable_under_itself(self, value: str) -> None:
        """A key is its own key, so a stored key and a looked-up key compare alike."""
        assert identity_key(identity_key(value)) == identity_key(value)


class TestMixedScript:
    @pytest.mark.parametrize("name", ["alice", "ravi.kumar-99", CYRILLIC_A * 3 + "123",
                                      "\u0905\u0936\u094b\u0915", FULLWIDTH_ALICE,
                                      "\u65e5\u672c\u3072\u3089\u30ab\u30bfabc",
                                      "\u30e9\u30fc\u30e1\u30f3", "na\u00efve"])
    def test_one_script_or_a_cjk_mix_passes(self, name: str) -> None:
        """Latin, whole Cyrillic, Devanagari, fullwidth Latin and Japanese mixes pass."""
        assert mixed_script(name) is None

    @pytest.mark.parametrize(("name", "scripts"), [
        (CYRILLIC_A + "lice", "CYRILLIC, LATIN"),
        ("\u03b1lpha", "GREEK, LATIN"),
        ("p" + CYRILLIC_A + "yp" + "\u03b1l", "CYRILLIC, GREEK, LATIN"),
    ])
    def test_latin_with_cyrillic_or_greek_is_refused(self, name: str, scripts: str) -> None:
        """A word mixing Latin with Cyrillic or Greek letters names the scripts it mixes."""
        assert mixed_script(name) == f"mixes {scripts}"

    def test_digits_and_punctuation_belong_to_no_script(self) -> None:
        """Digits, dots and hyphens do not count as a second script."""
        assert scripts_in("\u0430\u0431-1.2_3") == {"CYRILLIC"}


class TestEmailRule:
    def test_mixed_script_local_part_is_refused(self) -> None:
        """alice with a Cyrillic a is refused, naming the field and the scripts."""
        rule = rule_for(InsertUser, {**USER, "email": CYRILLIC_A + "lice@a.in"}, "email")
        assert rule.endswith(f"local part '{CYRILLIC_A}lice' mixes CYRILLIC, LATIN: use one script")

    def test_mixed_script_domain_label_is_refused(self) -> None:
        """A domain label mixing scripts is refused like a local part."""
        rule = rule_for(InsertTeamMember, {"email": "alice@p" + CYRILLIC_A + "ypal.in",
                                           "organization_id": "0" * 32,
                                           "invited_by": "0" * 32}, "email")
        assert "domain label" in rule

    def test_whole_cyrillic_local_part_is_accepted(self) -> None:
        """A local part in Cyrillic alone is a real address and passes."""
        email = "\u0430\u043d\u043d\u0430@a.in"
        assert email == parse(InsertUser, {**USER, "email": email}).email

    @pytest.mark.parametrize("model", [UpdateUser, UpdateTeamMember])
    def test_explicit_null_email_is_refused(self, model: type[Any]) -> None:
        """An update with email None is refused (it was stored as the text 'None')."""
        assert "must not be null" in rule_for(model, {"email": None}, "email")


class TestPasswordRule:
    @pytest.mark.parametrize("password", ["x" * 73, RUPEE * 25])
    @pytest.mark.parametrize("model", [InsertUser, UpdateUser, AcceptInvitation])
    def test_more_than_72_utf8_bytes_is_refused(self, model: type[Any],
                                                password: str) -> None:
        """bcrypt reads 72 bytes: a longer password (by bytes, not characters) is refused."""
        data = {**USER, "password": password}
        if model is AcceptInvitation:  # an invitation names no email, but a token
            data = {**data, "token": "t" * 20}
            del data["email"]
        assert "at most 72 bytes in UTF-8" in rule_for(model, data, "password")

    def test_exactly_72_bytes_is_accepted(self) -> None:
        """24 rupee signs are 72 bytes: the longest password accepted."""
        assert RUPEE * 24 == parse(InsertUser, {**USER, "password": RUPEE * 24}).password

    @pytest.mark.parametrize("field", ["username", "password"])
    def test_explicit_null_is_refused_on_update(self, field: str) -> None:
        """An update naming username or password with None is refused, not written."""
        assert "must not be null" in rule_for(UpdateUser, {field: None}, field)

    def test_hash_with_a_cost_bcrypt_refuses_is_not_a_hash(self) -> None:
        """Only costs 04-31 are bcrypt hashes: others could never be verified."""
        body = "." * 53
        assert [is_bcrypt_hash(f"$2b${cost}${body}") for cost in ("03", "04", "31", "99")] == [
            False, True, True, False]


class TestIdentityUniqueMarker:
    """Events say whether look-alikes were refused when they were recorded."""

    def test_new_events_record_that_look_alikes_were_refused(self) -> None:
        """Registered, Updated, Invited and member Updated are recorded with the marker."""
        user = User(username="alice", email="alice@a.in", password_hash="$2b$04$hash",
                    gst_number=None, account_type="customer", organization_id=None,
                    status="active")
        user.update({"username": "Alice"})
        member = TeamMember(email="ravi@x.in", organization_id=str(uuid4()),
                            invited_by=str(uuid4()), token_hash="sha256:00")
        member.update({"email": "meera@x.in"})
        events = [*user.collect_events(), *member.collect_events()]
        assert [True] * 4 == [e.identity_unique for e in events]

    def test_events_stored_before_the_marker_read_as_unrefused(self) -> None:
        """A stored Updated without the field decodes with identity_unique False."""
        mapper = PydanticMapper(transcoder=OrjsonTranscoder())
        state = {"timestamp": "2024-01-15T09:30:00Z", "metadata": {},
                 "changes": {"username": "Alice"}}
        stored = StoredEvent(originator_id=uuid4(), originator_version=2,
                             topic=get_topic(User.Updated), state=orjson.dumps(state))
        event = mapper.to_domain_event(stored)
        assert isinstance(event, User.Updated)
        assert event.identity_unique is False

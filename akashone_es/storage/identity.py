"""Identity & access on the storage facade: users, organizations, roles, permissions, teams."""

from __future__ import annotations

from akashone_es.storage.access import AccessStorage
from akashone_es.storage.teams import TeamStorage
from akashone_es.storage.users import SEALED_USER_FIELDS, UsersStorage


class IdentityStorage(AccessStorage, TeamStorage):
    """The IStorage groups Users, IAM roles, permissions, role/user links, team, seeding."""


__all__ = ["SEALED_USER_FIELDS", "IdentityStorage", "UsersStorage"]

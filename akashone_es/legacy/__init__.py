"""AkashOne's in-memory store brought into the log, and written back in the same shape.

A dump is one JSON object of AkashOne's tables (``users``, ``roles``, ``virtualMachines``,
...), each a list of records with camelCase fields as AkashOne keeps them. Every record becomes
one ``Imported`` event (``User.Imported``, ``Resource.Imported``, ...) that names its source
(``users:<id>``) and carries the record's own time. Ids: a source id that is a UUID is kept
(AkashOne's ``randomUUID()``); any other (``vm-1a2b3c4d``) becomes a UUID derived from its table
and id, so a rerun finds every record already there and adds nothing, and references between
records stay intact.

A record that breaks a rule (an invalid GSTIN check character, a duplicate email AkashOne let
in, a reference to nothing, a time in the future) is skipped whole with its reason; records
that depend on it are skipped too, saying so. AkashOne has no organizations table: its
``organizationId`` names the organization's owning user, so each one named becomes an
``Organization.Imported`` called after that user.

Modules: ``base`` (ids, refusals, the summary), ``importer`` (the run; users and RBAC),
``records`` (the other tables), ``back`` (the way back), ``sample`` (a realistic dump).
"""

from akashone_es.legacy.back import export_dump
from akashone_es.legacy.base import ImportSummary, Skipped, TableCount, legacy_id
from akashone_es.legacy.importer import IMPORTED_TABLES, Importer, dump_problem
from akashone_es.legacy.sample import sample_dump

__all__ = ["IMPORTED_TABLES", "ImportSummary", "Importer", "Skipped", "TableCount",
           "dump_problem", "export_dump", "legacy_id", "sample_dump"]

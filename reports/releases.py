"""Data releases (issue 15): the registry frozen at a cut, for investigators, answering the same next year.

Anchors: the ACS NSQIP participant use file (one locked, de-identified file per year, with a data
dictionary) and the way a trial group hands over an analysis dataset with a locked data cut.

**Storage.** A release copies, once, every table the investigator endpoints and the statistics read
(``RELEASED``) into a storage of its own: on PostgreSQL a schema ``release_<random>``; on the
development SQLite database the same tables under the prefix ``release_<random>__``. The copy is
de-identified at the freeze: the pseudonym and the free-text fields investigators are never shown are
blanked (``BLANKED``). Calendar dates stay inside the copy, because every time-to-event and every
"days from the implantation" is computed from them, but none ever leaves it: investigators get the
same de-identified shapes as before (``api.serializers.investigator_serializer``), now of frozen rows.
Triggers make the copy read-only in the database itself.

**Reading.** ``reading(release)`` points the connection at the copy for the length of an
investigator's request: PostgreSQL's ``search_path`` puts the release's schema before ``public``
(SQLite: temporary views named like the live tables, which SQLite resolves before the main
database's). Every query the API already makes (scoping, filters, serializers, the cohort of the
statistics) then reads the release, unchanged; tables a release does not copy (users, tokens, the read
and export logs) are still the live ones. When the request's reads go to a replica (``registry.routers``,
only once the replica holds the release: ``api.releases``), its connection is pointed at the release too.

**As of a past moment.** ``freeze_release(as_of=...)`` rebuilds each row from the history tables
(django-simple-history): the last historical version at or before ``as_of``, unless that version is
a deletion. A row with no history at all (loaded in bulk, never changed since) counts from its
``created_at`` where the table has one; such rows are counted in the release's ``row_counts`` under
``"without history"``. Nothing is chosen by entry timestamps alone.

**Checksum.** SHA-256 over the release's name, cut and method version and, table by table, the row
count and a SHA-256 of the rows in primary-key order (PostgreSQL's text form of each row; on SQLite,
Python's). ``verify(release)`` recomputes it from the stored rows.
"""

import datetime
import hashlib
import secrets
import threading
from contextlib import contextmanager

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.utils import timezone

from registry.routers import read_alias

from .models import Release

# (model label, the name investigators know the table by), in the order tables are copied and hashed.
RELEASED = (
    ("sites.Centre", "centres"),
    ("sites.Surgeon", "surgeons"),
    ("registry.ComplicationType", "complication-types"),
    ("registry.PumpModel", "pump-models"),
    ("registry.Patient", "patients"),
    ("registry.Implantation", "implantations"),
    ("registry.Treatment", "treatments"),
    ("registry.Complication", "complications"),
    ("registry.FollowUp", "follow-ups"),
    ("registry.LiverTest", "liver-tests"),
    ("registry.PerfusionCheck", "perfusion-checks"),
    ("registry.SystemicToxicity", "systemic-toxicities"),
    ("registry.Readmission", "readmissions"),
    ("registry.SystemicTherapyLine", "systemic-therapy-lines"),
)
# Identifying text a release never holds: the pseudonym, and the free text the investigator shapes leave
# out (api.serializers, ``identifying_fields``). tests/test_releases.py checks this list against them.
BLANKED = {
    "registry.Patient": ("pseudonym",),
    "registry.Implantation": ("never_treated_note",),
    "registry.Treatment": ("dose_change_reason",),
}
WITHOUT_HISTORY = "without history"


def released_models():
    return [(apps.get_model(label), name) for label, name in RELEASED]


def _quote(name):
    return connection.ops.quote_name(name)


def _postgres():
    return connection.vendor == "postgresql"


def _table(storage, model):
    """The release's copy of ``model``'s table, as SQL."""
    if _postgres():
        return f"{_quote(storage)}.{_quote(model._meta.db_table)}"
    return _quote(f"{storage}__{model._meta.db_table}")


def _columns(model):
    return [field.column for field in model._meta.concrete_fields]


# --- Freezing ---------------------------------------------------------------------------------


def _check_name(name):
    if not name or len(name) > 40 or not all(c.isalnum() and c.isascii() or c in "-_" for c in name):
        raise ValidationError({"name": ["Letters, digits, '-' and '_' only, at most 40 characters (e.g. 2026-12)."]})
    if Release.objects.filter(name=name).exists():
        raise ValidationError({"name": [f"A release named '{name}' exists already: a release is never replaced."]})


def _select_live(model, columns):
    return f"SELECT {', '.join(map(_quote, columns))} FROM {_quote(model._meta.db_table)}", []


def _select_as_of(model, columns, as_of):
    """Each row as its history last recorded it at or before ``as_of`` (not deleted), plus rows never recorded."""
    history = _quote(model.history.model._meta.db_table)
    live = _quote(model._meta.db_table)
    listed = ", ".join(_quote(c) for c in columns)
    historical = (
        f"SELECT {listed} FROM (SELECT {listed}, history_type, ROW_NUMBER() OVER "
        f"(PARTITION BY id ORDER BY history_date DESC, history_id DESC) AS history_rank FROM {history} "
        f"WHERE history_date <= %s) AS recorded WHERE history_rank = 1 AND history_type <> '-'"
    )
    unrecorded = f"SELECT {listed} FROM {live} AS row WHERE NOT EXISTS (SELECT 1 FROM {history} h WHERE h.id = row.id)"
    params = [as_of]
    if "created_at" in columns:
        unrecorded += " AND row.created_at <= %s"
        params.append(as_of)
    return f"{historical} UNION ALL {unrecorded}", params, unrecorded, params[1:]


def _create_copy(cursor, storage, model):
    table = _table(storage, model)
    live = _quote(model._meta.db_table)
    if _postgres():
        cursor.execute(f"CREATE TABLE {table} (LIKE public.{live} INCLUDING DEFAULTS)")
    else:
        cursor.execute(f"CREATE TABLE {table} AS SELECT * FROM {live} WHERE 0")


def _index_and_lock(cursor, storage, model):
    """Primary key and foreign-key indexes (the API's joins), then read-only triggers."""
    table = _table(storage, model)
    relations = [f.column for f in model._meta.concrete_fields if f.is_relation]
    if _postgres():
        cursor.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (id)")
        for column in relations:
            cursor.execute(f"CREATE INDEX ON {table} ({_quote(column)})")
        cursor.execute(f"ANALYZE {table}")
        cursor.execute(
            f"CREATE TRIGGER release_is_read_only BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION public.hai_release_read_only()"
        )
        return
    prefix = f"{storage}__{model._meta.db_table}"
    cursor.execute(f"CREATE UNIQUE INDEX {_quote(prefix + '__pk')} ON {table} (id)")
    for column in relations:
        cursor.execute(f"CREATE INDEX {_quote(prefix + '__' + column)} ON {table} ({_quote(column)})")
    for event in ("INSERT", "UPDATE", "DELETE"):
        cursor.execute(
            f"CREATE TRIGGER {_quote(prefix + '__read_only_' + event.lower())} BEFORE {event} ON {table} "
            "BEGIN SELECT RAISE(ABORT, 'a data release is read-only'); END"
        )


READ_ONLY_FUNCTION = """
CREATE OR REPLACE FUNCTION public.hai_release_read_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'data release % is read-only', TG_TABLE_SCHEMA;
END
$$
"""


def _copy(storage, as_of):
    """Copy every released table into ``storage``; {table name: rows} (and rows without history)."""
    counts, without_history = {}, 0
    with connection.cursor() as cursor:
        if _postgres():
            cursor.execute(READ_ONLY_FUNCTION)
            cursor.execute(f"CREATE SCHEMA {_quote(storage)}")
        for model, name in released_models():
            columns = _columns(model)
            _create_copy(cursor, storage, model)
            if as_of is None:
                select, params = _select_live(model, columns)
            else:
                select, params, unrecorded, unrecorded_params = _select_as_of(model, columns, as_of)
                cursor.execute(f"SELECT COUNT(*) FROM ({unrecorded}) AS unrecorded", unrecorded_params)
                without_history += cursor.fetchone()[0]
            cursor.execute(f"INSERT INTO {_table(storage, model)} ({', '.join(map(_quote, columns))}) {select}", params)
            counts[name] = cursor.rowcount
            blanked = list(BLANKED.get(model._meta.label, ()))
            if blanked:
                cursor.execute(
                    f"UPDATE {_table(storage, model)} SET " + ", ".join(f"{_quote(column)} = ''" for column in blanked)
                )
            _index_and_lock(cursor, storage, model)
    if as_of is not None:
        counts[WITHOUT_HISTORY] = without_history
    return counts


def _table_digest(cursor, storage, model):
    table = _table(storage, model)
    if _postgres():
        cursor.execute(
            f"SELECT COUNT(*), encode(sha256(convert_to(COALESCE(string_agg(t::text, E'\\n' ORDER BY t.id), ''), "
            f"'UTF8')), 'hex') FROM {table} AS t"
        )
        return cursor.fetchone()
    cursor.execute(f"SELECT * FROM {table} ORDER BY id")
    digest, count = hashlib.sha256(), 0
    for row in cursor.fetchall():
        digest.update(repr(row).encode() + b"\n")
        count += 1
    return count, digest.hexdigest()


def compute_checksum(name, cut, method_version, storage):
    digest = hashlib.sha256(f"{name}|{cut.isoformat()}|{method_version}\n".encode())
    with connection.cursor() as cursor:
        for model, table_name in released_models():
            count, table_digest = _table_digest(cursor, storage, model)
            digest.update(f"{table_name}:{count}:{table_digest}\n".encode())
    return digest.hexdigest()


def verify(release):
    """Does the release still hold what it held when frozen?"""
    return compute_checksum(release.name, release.cut, release.method_version, release.storage) == release.checksum


def freeze_release(name, *, as_of=None, user=None):
    """Freeze the registry now (``as_of`` None) or as of a past moment (from the history tables)."""
    from .services import METHOD_VERSION

    _check_name(name)
    now = timezone.now()
    if as_of is not None:
        if timezone.is_naive(as_of):
            raise ValidationError({"as_of": ["Give a time zone (e.g. 2026-11-01T06:00+00:00)."]})
        if as_of > now:
            raise ValidationError({"as_of": ["A release cannot show the registry as of a moment still to come."]})
    cut = as_of or now
    storage = f"release_{secrets.token_hex(6)}"
    with transaction.atomic():
        counts = _copy(storage, as_of)
        release = Release(
            name=name,
            cut=cut,
            source=Release.Source.HISTORY if as_of is not None else Release.Source.LIVE,
            method_version=METHOD_VERSION,
            row_counts=counts,
            codes_key=secrets.token_hex(32),
            storage=storage,
            frozen_at=now,
            frozen_by=user,
            checksum=compute_checksum(name, cut, METHOD_VERSION, storage),
        )
        release.save()
    return release


def latest_release():
    """The release investigators read when they name none: the latest cut (then the latest freeze)."""
    return Release.objects.order_by("-cut", "-frozen_at", "-pk").first()


def discard_all_releases():
    """Drop every release and its rows: only for the demo's ``flush_registry`` (a release is otherwise kept)."""
    with transaction.atomic(), connection.cursor() as cursor:
        for storage in Release.objects.values_list("storage", flat=True):
            if _postgres():
                cursor.execute(f"DROP SCHEMA IF EXISTS {_quote(storage)} CASCADE")
            else:
                for model, _ in released_models():
                    cursor.execute(f"DROP TABLE IF EXISTS {_table(storage, model)}")
        Release.objects.all().delete()
    forget_cohorts()


# --- Reading ----------------------------------------------------------------------------------


def current_release():
    """The release this connection is reading, or None (live rows)."""
    return getattr(connection, "hai_release", None)


def _reading_connections():
    """The connections this context reads through: the primary, and the replica while reads go there
    (registry.routers). The primary is pointed at the release too, so a read sent back to it mid-request
    (``primary_reads``) still reads the release."""
    return [connections[alias] for alias in dict.fromkeys((DEFAULT_DB_ALIAS, read_alias()))]


@contextmanager
def reading(release):
    """Point this context's unqualified table names at ``release`` (see the module docstring)."""
    current = current_release()
    if current is not None:
        if current.pk != release.pk:
            raise RuntimeError(f"Already reading release {current.name}, not {release.name}.")
        yield release
        return
    readers = _reading_connections()
    for reader in readers:
        _start_reading(reader, release)
    connection.hai_release = release
    try:
        yield release
    finally:
        connection.hai_release = None
        for reader in readers:
            _stop_reading(reader)


def _start_reading(reader, release):
    with reader.cursor() as cursor:
        if reader.vendor == "postgresql":
            cursor.execute(f"SET search_path TO {_quote(release.storage)}, public")
        else:
            for model, _ in released_models():
                cursor.execute(
                    f"CREATE TEMP VIEW {_quote(model._meta.db_table)} AS SELECT * FROM main.{_table(release.storage, model)}"
                )


def _stop_reading(reader):
    from django.db import DatabaseError

    try:
        with reader.cursor() as cursor:
            if reader.vendor == "postgresql":
                cursor.execute("RESET search_path")
            else:
                for model, _ in released_models():
                    cursor.execute(f"DROP VIEW IF EXISTS temp.{_quote(model._meta.db_table)}")
    except DatabaseError:
        # An aborted transaction: its rollback undoes the SET (PostgreSQL). Outside one, never keep a
        # connection that might still read a release.
        if not reader.in_atomic_block:
            reader.close()


# --- A release's cohort and analysis dataset, computed once per process ------------------------

_cohorts = {}
_cohorts_lock = threading.RLock()  # a dataset is built from the kept cohort
KEPT = 2  # releases whose cohort a process keeps (the latest and one named)


def forget_cohorts():
    with _cohorts_lock:
        _cohorts.clear()


def kept(key, build):
    with _cohorts_lock:
        if key not in _cohorts:
            if len(_cohorts) >= 2 * KEPT:
                _cohorts.pop(next(iter(_cohorts)))
            _cohorts[key] = build()
        return _cohorts[key]


def release_cohort(release):
    """{implantation id: CohortRow} of ``release`` (immutable: never rebuilt)."""
    from .cohort import cohort

    def build():
        with reading(release):
            return {row.id: row for row in cohort()}

    return kept(("cohort", release.storage), build)


def release_complication_types(release):
    from registry.models import ComplicationType

    def build():
        with reading(release):
            return list(
                ComplicationType.objects.order_by("code").values("code", "name", "category", "catheter_related")
            )

    return kept(("types", release.storage), build)


def release_cut_date(release):
    return timezone.localtime(release.cut).date() if release is not None else None


def cut_date_or_today(today):
    """The day a reading counts follow-up to: the release's cut day, or ``today`` for live rows."""
    release = current_release()
    return release_cut_date(release) if release is not None else today


def current_cut_or_now():
    """The moment a reading counts to: the release's cut, or now for live rows."""
    release = current_release()
    return release.cut if release is not None else timezone.now()


def as_datetime(value):
    """An ``as_of`` given as text (ISO 8601, with a time zone) or a datetime."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime.datetime):
        return value
    try:
        return datetime.datetime.fromisoformat(value)
    except ValueError as error:
        raise ValidationError({"as_of": ["Give ISO 8601 with a time zone, e.g. 2026-11-01T06:00+00:00."]}) from error

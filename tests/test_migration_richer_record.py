"""The migrations on a copy of the demo registry, where nothing is lost (issue 14).

Migration 0016 (the richer record) adds the pump catalogue and many columns, and fills
PerfusionCheck.modality from the method. On a seeded demo registry, with history rows written by
ordinary edits, every table that existed before 0016 keeps its rows and the values of its columns when
the migration is unapplied and when it is applied again.
"""

import hashlib

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from registry import demo
from registry.rules import today
from registry.services import restore_complication_types
from registry.vocabulary import MODALITY_OF_METHOD

BEFORE = [("registry", "0015_queries_on_toxicities_and_readmissions")]
AFTER = [("registry", "0016_richer_record")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)


def columns_before_0016():
    """{table: (primary key column, [columns])} of the registry app as migration 0015 leaves it.

    Read from the migration state rather than from the database, so that a column the reverse
    migration dropped by mistake is still expected (and its absence fails the test).
    """
    apps = MigrationExecutor(connection).loader.project_state(BEFORE).apps
    return {
        model._meta.db_table: (model._meta.pk.column, [f.column for f in model._meta.concrete_fields])
        for model in apps.get_app_config("registry").get_models(include_auto_created=True)
    }


def snapshot(tables):
    """{table: (row count, {column: sha256 of its values in primary key order})}.

    Raw SQL, since the models follow the latest schema. Digests per column in one row order, so that a
    value moved from one row to another changes them too, and a failure names the column.
    """
    quote = connection.ops.quote_name
    result = {}
    with connection.cursor() as cursor:
        for table, (pk, columns) in tables.items():
            cursor.execute(f"SELECT {', '.join(quote(c) for c in columns)} FROM {quote(table)} ORDER BY {quote(pk)}")
            rows = cursor.fetchall()
            digests = {
                column: hashlib.sha256("\n".join(repr(row[i]) for row in rows).encode()).hexdigest()
                for i, column in enumerate(columns)
            }
            result[table] = (len(rows), digests)
    return result


def differences(expected, found):
    """The tables whose row count changed and the (table, column) pairs whose values did."""
    counts = {t: (expected[t][0], found[t][0]) for t in expected if expected[t][0] != found[t][0]}
    columns = sorted((t, c) for t in expected for c, digest in expected[t][1].items() if found[t][1][c] != digest)
    return counts, columns


def database_columns(tables):
    with connection.cursor() as cursor:
        present = set(connection.introspection.table_names(cursor))
        return {
            table: {c.name for c in connection.introspection.get_table_description(cursor, table)}
            for table in tables
            if table in present
        }


def edit_some_records():
    """Ordinary saves, so that django-simple-history writes '~' rows next to the seed's (which writes none)."""
    from registry.models import Implantation, Patient, PerfusionCheck, Treatment

    patient = Patient.objects.order_by("pk").first()
    patient.liver_metastases_count = (patient.liver_metastases_count or 0) + 1
    patient.ecog = 1  # a 0016 column: dropped on the way back, which must not disturb the rest of the row
    patient.save()
    implantation = Implantation.objects.order_by("pk").last()
    implantation.operative_minutes = 222
    implantation.catheter_tip_position = "proper_hepatic"
    implantation.save()
    # save() fills the modality from the method: one row where it was set before the data migration runs.
    PerfusionCheck.objects.order_by("pk").first().save()
    reduced = Treatment.objects.filter(dose_change="reduced").exclude(dose_change_reason="").order_by("pk").first()
    if reduced is not None:
        # A coded hold reason next to the free-text note the old constraint asks for, so the reverse can re-add it.
        reduced.hold_reason = "alp"
        reduced.save()


def remove_demo_data():
    demo.flush_registry()
    get_user_model().objects.filter(username__in=["coordinator", "investigator"]).delete()
    get_user_model().objects.filter(username__regex=r"^(dm|lead)-").delete()


# Transactional (migrations run outside the test's transaction): pytest-django runs it after the
# ordinary tests, and the tables are emptied afterwards (tests/conftest.py puts the migrations' rows back).
@pytest.mark.django_db(transaction=True)
def test_richer_record_migration_keeps_every_row_and_value_of_the_demo_registry():
    try:
        remove_demo_data()
        restore_complication_types()  # an earlier transactional test may have emptied them; the seed needs them
        demo.seed_registry(2, 80, 5, reference_date=min(demo.REFERENCE_DATE, today()))
        edit_some_records()

        tables = columns_before_0016()
        # Since 0016 a coded reason alone is enough for a reduced dose; 0015 wants a note. Going back writes the
        # code's label as the note: the snapshot holds the label, the row going back holds the code only.
        from registry.models import Treatment

        coded = Treatment.objects.filter(dose_change="reduced").order_by("-pk").first()
        Treatment.objects.filter(pk=coded.pk).update(hold_reason="ast", dose_change_reason="AST rise")
        seeded = snapshot(tables)
        Treatment.objects.filter(pk=coded.pk).update(dose_change_reason="")
        # Not a vacuous comparison: the clinical tables and their history hold rows.
        for table in ("registry_patient", "registry_implantation", "registry_treatment", "registry_perfusioncheck"):
            assert seeded[table][0] > 0, table
        for table in ("registry_historicalpatient", "registry_historicalimplantation"):
            assert seeded[table][0] > 0, table

        migrate(BEFORE)
        present = database_columns(tables)
        assert "registry_pumpmodel" not in database_columns(["registry_pumpmodel"])
        assert present == {table: set(columns) for table, (_, columns) in tables.items()}
        assert differences(seeded, snapshot(tables)) == ({}, [])

        migrate(AFTER)
        assert differences(seeded, snapshot(tables)) == ({}, [])
        with connection.cursor() as cursor:
            cursor.execute("SELECT method, modality, COUNT(*) FROM registry_perfusioncheck GROUP BY method, modality")
            pairs = {(method, modality): n for method, modality, n in cursor.fetchall()}
        assert pairs
        assert {pair for pair in pairs if pair[0] and not pair[1]} == set()
        expected = {str(method): str(modality) for method, modality in MODALITY_OF_METHOD.items()}
        assert {(method, modality) for method, modality in pairs if method} == {
            (method, expected[method]) for method, _ in pairs if method
        }
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
        remove_demo_data()

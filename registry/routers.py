"""Investigators' reads on a PostgreSQL streaming replica (``DATABASE_REPLICA_URL``); everything else on the primary.

Reads go to the replica only while ``replica_reads()`` is on, and only ``api.releases`` turns it on: for an
investigator's GET or HEAD, once the request is authenticated and its data release chosen on the primary,
and only if the replica already holds that release. A release never changes once frozen, so a replica that
holds it answers exactly as the primary would, and the answer may be cached under the release. Live rows
(every other role) stay on the primary: a write is seen by the next read, and nothing a lagging replica
returned is ever cached under the live data version (``reports.cohort``).

A context variable, not a thread-local: it follows the request into whatever the view calls, and a request
that never turns it on (a Celery task, the admin, a management command) reads the primary.
"""

from contextlib import contextmanager
from contextvars import ContextVar

from django.db import DEFAULT_DB_ALIAS, router

REPLICA = "replica"

_to_replica = ContextVar("hai_reads_to_replica", default=False)


def replica_configured():
    """Is there a replica to read from? (settings: ``DATABASE_REPLICA_URL`` installs the router with its alias.)"""
    return any(isinstance(each, ReplicaRouter) for each in router.routers)


def read_alias():
    """The database this context's reads go to."""
    return REPLICA if _to_replica.get() else DEFAULT_DB_ALIAS


@contextmanager
def _reads_to_replica(on):
    previous = _to_replica.get()
    _to_replica.set(on)
    try:
        yield
    finally:
        # Not reset(token): a streamed response may be closed in another context than the one it started in.
        _to_replica.set(previous)


def replica_reads():
    """Send this context's reads to the replica. Only for reads whose data the replica is known to hold."""
    return _reads_to_replica(True)


def primary_reads():
    """Read the primary, even inside an investigator's request: for what is cached under the live data version."""
    return _reads_to_replica(False)


class ReplicaRouter:
    """Writes and migrations on the primary; reads on the replica only while ``replica_reads()`` is on."""

    def db_for_read(self, model, **hints):
        return read_alias()

    def db_for_write(self, model, **hints):
        return DEFAULT_DB_ALIAS

    def allow_relation(self, obj1, obj2, **hints):
        # One database seen twice: a row read on the replica may be linked to one written on the primary.
        return True

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        # The replica replays the primary's WAL, schema changes included; it refuses writes of its own.
        return db == DEFAULT_DB_ALIAS

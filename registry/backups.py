"""Backups that restore (issue 17, item 3): the database, the media files and a manifest to check both.

A backup is one folder, ``hai-backup-<UTC time>``:

``database.dump``
    ``pg_dump --format=custom`` of the database named by DATABASE_URL: every schema, so the data
    releases' own schemas (``reports.releases``) and the history tables come with the live ones.
``media/``
    A copy of MEDIA_ROOT: the run snapshots and the stored reports (HTML, PDF, emailed PDF).
``manifest.json``
    When, the Django and pg_dump versions, the migrations applied, the rows of every table and the
    SHA-256 of the dump and of every media file.

The rows are counted inside the very snapshot pg_dump reads (``pg_export_snapshot``), so the counts
are those of the dump even while the registry is in use. The folder is written under a hidden name
and renamed last: a folder named ``hai-backup-*`` is complete.

A restore checks the backup first (the dump's and every media file's checksum) and touches nothing
if it does not match. It then restores into the database named by DATABASE_URL, which must be empty
(a freshly created database); ``force`` first drops every schema in it, so the result is the same
as a fresh database rather than the backup laid over newer tables. pg_restore runs as the
connecting user (``--no-owner --no-acl``) in one transaction. Then the media files are put back
and the manifest is checked again against what was restored: the rows of every table and every
media file's checksum. Any difference is an error naming the tables or files.

Connection parameters come from ``settings.DATABASES["default"]``; the password is handed to
pg_dump and pg_restore in PGPASSWORD, never on their command line.
"""

import datetime
import hashlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path, PurePosixPath

import django
import psycopg
from django.conf import settings
from django.db import connections
from psycopg import sql

MANIFEST = "manifest.json"
DUMP = "database.dump"
MEDIA = "media"
FORMAT = 1
FOLDER_PREFIX = "hai-backup-"
CHUNK = 1 << 20
# Schemas PostgreSQL keeps for itself: never counted, never dropped.
SYSTEM_SCHEMAS = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'"


class BackupError(Exception):
    """A backup that cannot be taken, or a restore that does not match its backup."""


# --- Connections ------------------------------------------------------------------------------


def database_parameters(name=None):
    """The default database's connection parameters (``name``: another database on the same server)."""
    database = connections["default"].settings_dict
    if database["ENGINE"] != "django.db.backends.postgresql":
        raise BackupError("Backups need PostgreSQL: set DATABASE_URL to a postgres:// URL.")
    parameters = {
        "host": database.get("HOST") or "",
        "port": str(database.get("PORT") or ""),
        "user": database.get("USER") or "",
        "password": database.get("PASSWORD") or "",
        "dbname": name or database["NAME"],
    }
    sslmode = (database.get("OPTIONS") or {}).get("sslmode")
    if sslmode:
        parameters["sslmode"] = sslmode
    return parameters


def _connect(parameters, **kwargs):
    return psycopg.connect(**{key: value for key, value in parameters.items() if value}, **kwargs)


def _client_arguments(parameters):
    arguments = [f"--dbname={parameters['dbname']}"]
    for option, key in (("--host", "host"), ("--port", "port"), ("--username", "user")):
        if parameters[key]:
            arguments.append(f"{option}={parameters[key]}")
    return arguments


def _client_environment(parameters):
    environment = dict(os.environ)
    # Only ever through the environment: a password on the command line is visible in ps to every user.
    environment.pop("PGPASSWORD", None)
    if parameters["password"]:
        environment["PGPASSWORD"] = parameters["password"]
    if parameters.get("sslmode"):
        environment["PGSSLMODE"] = parameters["sslmode"]
    return environment


def _run_client(command, parameters):
    try:
        done = subprocess.run(command, env=_client_environment(parameters), capture_output=True, text=True, check=False)
    except FileNotFoundError as error:
        raise BackupError(f"{command[0]} is not installed (PostgreSQL client tools, version 15 or later).") from error
    if done.returncode != 0:
        raise BackupError(f"{command[0]} failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout


# --- What is in a database --------------------------------------------------------------------


def user_tables(cursor):
    """Every ordinary table outside PostgreSQL's own schemas, as "schema.table"."""
    cursor.execute(
        "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE c.relkind = 'r' AND {SYSTEM_SCHEMAS} ORDER BY 1, 2"
    )
    return [(schema, table) for schema, table in cursor.fetchall()]


def row_counts(cursor):
    """{"schema.table": rows} for every table, in the cursor's transaction."""
    counts = {}
    for schema, table in user_tables(cursor):
        cursor.execute(sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table)))
        counts[f"{schema}.{table}"] = cursor.fetchone()[0]
    return counts


def _applied_migrations(cursor):
    cursor.execute("SELECT to_regclass('public.django_migrations') IS NOT NULL")
    if not cursor.fetchone()[0]:
        return {}
    cursor.execute("SELECT app, name FROM public.django_migrations ORDER BY app, id")
    applied = {}
    for app, name in cursor.fetchall():
        applied.setdefault(app, []).append(name)
    return applied


# --- Files ------------------------------------------------------------------------------------


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _regular_files(root):
    """(relative POSIX name, path) of every regular file under ``root``; symbolic links are not followed."""
    root = Path(root)
    if not root.is_dir():
        return
    for folder, folders, files in os.walk(root):
        folders.sort()
        for name in sorted(files):
            path = Path(folder) / name
            if stat.S_ISREG(os.lstat(path).st_mode):
                yield path.relative_to(root).as_posix(), path


def _copy_hashed(source, target):
    """Copy ``source`` to ``target`` through a temporary name; the SHA-256 and size of what was written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    digest, size = hashlib.sha256(), 0
    with open(source, "rb") as reading, open(partial, "wb") as writing:
        while chunk := reading.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            writing.write(chunk)
    os.replace(partial, target)
    return digest.hexdigest(), size


def _inside(root, name):
    """``root / name`` for a manifest's media name, refusing one that would leave ``root``."""
    relative = PurePosixPath(name)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise BackupError(f"The manifest names a media file outside the media folder: {name!r}.")
    return Path(root, *relative.parts)


# --- Backup -----------------------------------------------------------------------------------


def create_backup(output_dir, *, now=None):
    """Write one backup folder under ``output_dir``; returns (its path, the manifest)."""
    parameters = database_parameters()
    now = now or datetime.datetime.now(datetime.UTC)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    final = output_dir / f"{FOLDER_PREFIX}{now:%Y%m%dT%H%M%SZ}"
    if final.exists():
        raise BackupError(f"{final} exists already.")
    partial = output_dir / f".{final.name}.partial"
    # The backup holds every patient's record: readable by its owner only.
    partial.mkdir(mode=0o700)
    try:
        dump = partial / DUMP
        with _connect(parameters) as connection:
            connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            connection.read_only = True
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_export_snapshot(), current_setting('server_version')")
                snapshot, server_version = cursor.fetchone()
                _run_client(
                    ["pg_dump", "--format=custom", f"--snapshot={snapshot}", f"--file={dump}"]
                    + _client_arguments(parameters),
                    parameters,
                )
                counts = row_counts(cursor)
                migrations = _applied_migrations(cursor)
        dump.chmod(0o600)
        media = {}
        for name, path in _regular_files(settings.MEDIA_ROOT):
            checksum, size = _copy_hashed(path, partial / MEDIA / name)
            media[name] = {"sha256": checksum, "bytes": size}
        manifest = {
            "format": FORMAT,
            "created_at": now.isoformat(),
            "django": django.get_version(),
            "pg_dump": _run_client(["pg_dump", "--version"], parameters).strip(),
            "database": {
                "name": parameters["dbname"],
                "server_version": server_version,
                "dump": DUMP,
                "sha256": sha256_of(dump),
                "bytes": dump.stat().st_size,
            },
            "migrations": migrations,
            "row_counts": counts,
            "media": media,
        }
        (partial / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        os.rename(partial, final)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return final, manifest


# --- Restore ----------------------------------------------------------------------------------


def read_manifest(backup):
    path = Path(backup) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError as error:
        raise BackupError(f"{path} is missing: not a backup, or one that did not finish.") from error
    except ValueError as error:
        raise BackupError(f"{path} is not valid JSON.") from error
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{path}: unknown manifest format {manifest.get('format')!r}.")
    return manifest


def _mismatch(problems, what):
    shown = "\n".join(f"  - {problem}" for problem in problems[:50])
    more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
    return BackupError(f"{what} ({len(problems)} problem(s)):\n{shown}{more}")


def check_backup(backup, manifest):
    """The dump and every media file of the backup have the checksums the manifest gives them."""
    backup = Path(backup)
    problems = []
    dump = backup / manifest["database"]["dump"]
    if not dump.is_file():
        problems.append(f"{dump.name}: missing")
    elif sha256_of(dump) != manifest["database"]["sha256"]:
        problems.append(f"{dump.name}: checksum differs from the manifest")
    for name, entry in manifest["media"].items():
        path = _inside(backup / MEDIA, name)
        if not path.is_file():
            problems.append(f"media/{name}: missing")
        elif sha256_of(path) != entry["sha256"]:
            problems.append(f"media/{name}: checksum differs from the manifest")
    if problems:
        raise _mismatch(problems, f"The backup {backup.name} is damaged or was changed; nothing was restored")


def _empty_database(cursor):
    cursor.execute(f"SELECT n.nspname FROM pg_namespace n WHERE {SYSTEM_SCHEMAS} ORDER BY 1")
    for (schema,) in cursor.fetchall():
        cursor.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    cursor.execute("CREATE SCHEMA public")


def verify_restore(manifest, parameters, media_root):
    """The restored database and media folder against the manifest; raises BackupError on any difference."""
    with _connect(parameters) as connection, connection.cursor() as cursor:
        restored = row_counts(cursor)
    expected = manifest["row_counts"]
    problems = [
        f"{table}: {restored.get(table, 'no table,')} rows restored, {rows} in the backup"
        for table, rows in expected.items()
        if restored.get(table) != rows
    ]
    problems += [f"{table}: restored, but not in the backup" for table in restored if table not in expected]
    for name, entry in manifest["media"].items():
        path = _inside(media_root, name)
        if not path.is_file():
            problems.append(f"media/{name}: missing after the restore")
        elif sha256_of(path) != entry["sha256"]:
            problems.append(f"media/{name}: checksum differs from the manifest after the restore")
    if problems:
        raise _mismatch(problems, "The restore does not match the backup's manifest")
    return restored


def restore_backup(backup, *, force=False, database_name=None):
    """Restore ``backup`` into the default database (or ``database_name`` on its server) and MEDIA_ROOT.

    Returns the manifest, once the restored rows and files have been checked against it.
    """
    backup = Path(backup)
    manifest = read_manifest(backup)
    check_backup(backup, manifest)
    parameters = database_parameters(database_name)
    media_root = Path(settings.MEDIA_ROOT)

    with _connect(parameters) as connection, connection.cursor() as cursor:
        tables = user_tables(cursor)
        files = next(_regular_files(media_root), None)
        if (tables or files) and not force:
            found = [f"{len(tables)} table(s) in database {parameters['dbname']}"] if tables else []
            found += [f"files in {media_root}"] if files else []
            raise BackupError(
                f"The target is not empty ({' and '.join(found)}): restore into a freshly created database "
                "and an empty media folder, or pass --force to replace what is there."
            )
        if tables:
            _empty_database(cursor)
        connection.commit()

    _run_client(
        ["pg_restore", "--no-owner", "--no-acl", "--single-transaction", "--exit-on-error"]
        + _client_arguments(parameters)
        + [str(backup / manifest["database"]["dump"])],
        parameters,
    )
    for name in manifest["media"]:
        _copy_hashed(_inside(backup / MEDIA, name), _inside(media_root, name))
    verify_restore(manifest, parameters, media_root)
    return manifest


def pending_migrations(manifest):
    """Migrations of this code the backup's database had not applied (``manage.py migrate`` adds them)."""
    from django.db.migrations.loader import MigrationLoader

    applied = {(app, name) for app, names in manifest["migrations"].items() for name in names}
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return sorted(key for key in loader.graph.nodes if key not in applied)


def unknown_migrations(manifest):
    """Migrations the backup's database had applied that this code does not have (a newer release's backup)."""
    from django.db.migrations.loader import MigrationLoader

    loader = MigrationLoader(None, ignore_no_migrations=True)
    known_apps = {app for app, _ in loader.graph.nodes}
    return sorted(
        (app, name)
        for app, names in manifest["migrations"].items()
        if app in known_apps
        for name in names
        if (app, name) not in loader.graph.nodes
    )

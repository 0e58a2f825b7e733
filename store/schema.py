"""The store's DuckDB schema as forward-only, versioned migrations.

``MIGRATIONS[i]`` takes a store from schema version ``i`` to ``i + 1``. A store records its version
in ``meta``; opening a store whose version is newer than this code raises :class:`SchemaError`
(never guess at a future layout). The materialised wide table is derived data and is not part of
the migrations: :mod:`store.wide` rebuilds it whenever its definition changes.
"""

from __future__ import annotations

import duckdb

from store import compartments
from store.errors import SchemaError
from store.structures import STRUCTURES
from store.vocabulary import (
    ENGINE_KIND,
    FIRST_IMAGING_INSTANCE,
    JOB_STATUSES,
    LABEL_IMPORT_KIND,
    METRICS_IMPORT_KIND,
    SIMULATED_KIND,
)

_JOB_STATUS_LIST = ", ".join(f"'{s}'" for s in JOB_STATUSES)

_V1 = (
    """
    CREATE TABLE meta (
        key VARCHAR PRIMARY KEY,
        value VARCHAR NOT NULL
    )
    """,
    """
    CREATE TABLE participants (
        eid BIGINT NOT NULL,
        sex INTEGER,
        age DOUBLE,
        height_cm DOUBLE,
        weight_kg DOUBLE,
        bmi DOUBLE,
        grip_left_kg DOUBLE,
        grip_right_kg DOUBLE,
        falls_code INTEGER,
        activity_group INTEGER,
        death_date DATE,
        visit_date DATE,
        centre VARCHAR,
        arm_lean_left_kg DOUBLE,
        arm_lean_right_kg DOUBLE,
        leg_lean_left_kg DOUBLE,
        leg_lean_right_kg DOUBLE,
        source VARCHAR NOT NULL,
        simulated BOOLEAN NOT NULL,
        imported_at TIMESTAMP NOT NULL
    )
    """,
    """
    CREATE TABLE structures (
        label INTEGER PRIMARY KEY,
        key VARCHAR NOT NULL,
        name VARCHAR NOT NULL,
        compartment VARCHAR NOT NULL,
        is_muscle BOOLEAN NOT NULL
    )
    """,
    # Long form, one row per eid x structure x side x source. No index: a 27M-row ART index makes
    # bulk imports slow, and every read goes through the materialised wide table or an eid filter.
    """
    CREATE TABLE structure_metrics (
        eid BIGINT NOT NULL,
        label INTEGER NOT NULL,
        side VARCHAR NOT NULL,
        volume_cm3 DOUBLE NOT NULL,
        fat_fraction DOUBLE,
        source VARCHAR NOT NULL,
        provenance_id BIGINT
    )
    """,
    # One row per eid x source: which metric set is current for an eid (the latest written).
    """
    CREATE TABLE metric_sets (
        eid BIGINT NOT NULL,
        source VARCHAR NOT NULL,
        simulated BOOLEAN NOT NULL,
        provenance_id BIGINT,
        written_at TIMESTAMP NOT NULL
    )
    """,
    """
    CREATE TABLE provenance (
        id BIGINT PRIMARY KEY,
        kind VARCHAR NOT NULL,
        input_sha256 VARCHAR,
        model_sha256 VARCHAR,
        code_version VARCHAR,
        details VARCHAR,
        created TIMESTAMP NOT NULL
    )
    """,
    """
    CREATE TABLE artifacts (
        eid BIGINT NOT NULL,
        kind VARCHAR NOT NULL,
        path VARCHAR NOT NULL,
        sha256 VARCHAR,
        provenance_id BIGINT,
        created TIMESTAMP NOT NULL
    )
    """,
    f"""
    CREATE TABLE jobs (
        job_id VARCHAR PRIMARY KEY,
        eid BIGINT,
        input_path VARCHAR,
        input_sha256 VARCHAR,
        status VARCHAR NOT NULL CHECK (status IN ({_JOB_STATUS_LIST})),
        stage VARCHAR,
        attempts INTEGER NOT NULL DEFAULT 0,
        error VARCHAR,
        seconds DOUBLE,
        timings VARCHAR,
        created TIMESTAMP NOT NULL,
        updated TIMESTAMP NOT NULL
    )
    """,
    "INSERT INTO meta VALUES ('store_version', '0')",
)

# Phenotypes from real extracts: DEXA totals (to cross-check the limbs), the instance each IPAQ value
# came from, per-participant instances of any other variable the mapping lets fall back, and the
# field mapping each import used (the data dictionary's source fields come from it).
_V2 = (
    "ALTER TABLE participants ADD COLUMN dexa_arms_lean_kg DOUBLE",
    "ALTER TABLE participants ADD COLUMN dexa_legs_lean_kg DOUBLE",
    "ALTER TABLE participants ADD COLUMN dexa_total_lean_kg DOUBLE",
    "ALTER TABLE participants ADD COLUMN activity_group_instance INTEGER",
    """
    CREATE TABLE phenotype_instances (
        eid BIGINT NOT NULL,
        variable VARCHAR NOT NULL,
        instance INTEGER NOT NULL
    )
    """,
    """
    CREATE TABLE imports (
        id BIGINT PRIMARY KEY,
        kind VARCHAR NOT NULL,
        path VARCHAR NOT NULL,
        mapping_origin VARCHAR,
        mapping VARCHAR,
        imported_at TIMESTAMP NOT NULL
    )
    """,
)

# AMRA's body composition of the same scans (fields 22403-22409, 22435), imported beside MSMV's own
# values so the two can be compared.
_V3 = tuple(
    f"ALTER TABLE participants ADD COLUMN {column} DOUBLE"
    for column in ("amra_thigh_muscle_l", "amra_anterior_right_l", "amra_posterior_right_l", "amra_anterior_left_l",
                   "amra_posterior_left_l", "amra_mfi_pct")
)

# UK Biobank images about 60,000 participants a second time (instance 3): imaging results are keyed
# by eid and instance, and what was stored before was the first imaging visit (instance 2). Visit
# dates per instance give the interval between visits. A withdrawal keeps only the eid and the date it
# was recorded, so later imports can refuse the participant.
_V4 = (
    *(
        statement
        for table in ("structure_metrics", "metric_sets", "artifacts")
        for statement in (
            f"ALTER TABLE {table} ADD COLUMN instance INTEGER DEFAULT {FIRST_IMAGING_INSTANCE}",
            f"ALTER TABLE {table} ALTER COLUMN instance SET NOT NULL",
        )
    ),
    # a job's instance is unknown, like its eid, until the package names it
    "ALTER TABLE jobs ADD COLUMN instance INTEGER",
    f"UPDATE jobs SET instance = {FIRST_IMAGING_INSTANCE} WHERE eid IS NOT NULL",
    """
    CREATE TABLE visit_dates (
        eid BIGINT NOT NULL,
        instance INTEGER NOT NULL,
        visit_date DATE NOT NULL
    )
    """,
    f"""
    INSERT INTO visit_dates SELECT eid, {FIRST_IMAGING_INSTANCE}, visit_date FROM participants
    WHERE visit_date IS NOT NULL
    """,
    """
    CREATE TABLE withdrawals (
        eid BIGINT PRIMARY KEY,
        withdrawn_on DATE NOT NULL
    )
    """,
)

# Compartment-level volumes, for sources that label a thigh compartment as one region (store.compartments).
_V5 = compartments.MIGRATION

# Every metric source is kept side by side: a metric set records the kind of source that wrote it
# (store.vocabulary.SOURCE_KINDS; the MSMV_SOURCE_PREFERENCE setting orders them to pick each participant's
# default) and an artifact the source it belongs to, so an imported label map and the engine's no longer
# replace each other. Earlier sets get their kind from the simulated flag and their provenance ('label-import'
# from msmv import-labels, 'import-metrics' or none from a metrics file, anything else the engine's); earlier
# artifacts the source of the metric set written with the same provenance, else the engine's 'msmv'.
_V6 = (
    # NOT NULL before the UPDATE: DuckDB refuses to add the constraint over rows updated in the transaction
    f"ALTER TABLE metric_sets ADD COLUMN source_kind VARCHAR DEFAULT '{ENGINE_KIND}'",
    "ALTER TABLE metric_sets ALTER COLUMN source_kind SET NOT NULL",
    f"""
    UPDATE metric_sets SET source_kind = CASE
        WHEN simulated THEN '{SIMULATED_KIND}'
        WHEN (SELECT p.kind FROM provenance p WHERE p.id = metric_sets.provenance_id) = 'label-import'
            THEN '{LABEL_IMPORT_KIND}'
        WHEN coalesce((SELECT p.kind FROM provenance p WHERE p.id = metric_sets.provenance_id), 'import-metrics')
            = 'import-metrics' THEN '{METRICS_IMPORT_KIND}'
        ELSE '{ENGINE_KIND}' END
    """,
    "ALTER TABLE metric_sets ALTER COLUMN source_kind DROP DEFAULT",  # every writer names the kind
    "ALTER TABLE artifacts ADD COLUMN source VARCHAR DEFAULT 'msmv'",
    "ALTER TABLE artifacts ALTER COLUMN source SET NOT NULL",
    """
    UPDATE artifacts SET source = coalesce((
        SELECT min(ms.source) FROM metric_sets ms WHERE ms.eid = artifacts.eid AND ms.instance = artifacts.instance
        AND ms.provenance_id = artifacts.provenance_id), 'msmv')
    """,
    "ALTER TABLE artifacts ALTER COLUMN source DROP DEFAULT",
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2, _V3, _V4, _V5, _V6)
SCHEMA_VERSION: int = len(MIGRATIONS)


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    """The schema version recorded in the store (0 for an empty database)."""
    has_meta = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'meta' AND table_schema = 'main'"
    ).fetchone()
    if not has_meta or has_meta[0] == 0:
        return 0
    row = con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return int(row[0]) if row else 0


def check_readable(con: duckdb.DuckDBPyConnection) -> int:
    """Raise :class:`SchemaError` unless this code understands the store's schema; return it."""
    found = schema_version(con)
    if found > SCHEMA_VERSION:
        raise SchemaError(
            f"the store has schema version {found} but this MSMV understands up to {SCHEMA_VERSION}; "
            "upgrade MSMV (migrations only go forward)"
        )
    return found


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Apply the missing migrations in one transaction each; return the resulting schema version."""
    found = check_readable(con)
    for version in range(found, SCHEMA_VERSION):
        con.execute("BEGIN TRANSACTION")
        try:
            for statement in MIGRATIONS[version]:
                con.execute(statement)
            con.execute(
                "INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", [str(version + 1)]
            )
            con.execute("COMMIT")
        except duckdb.Error as err:
            con.execute("ROLLBACK")
            raise SchemaError(f"migration to schema version {version + 1} failed: {err}") from err
    _sync_structures(con)
    return SCHEMA_VERSION


def _sync_structures(con: duckdb.DuckDBPyConnection) -> None:
    """Keep the ``structures`` table equal to :data:`store.structures.STRUCTURES`."""
    rows = [(s.label, s.key, s.name, s.compartment, s.is_muscle) for s in STRUCTURES]
    current = con.execute("SELECT label, key, name, compartment, is_muscle FROM structures ORDER BY label").fetchall()
    if [tuple(r) for r in current] == rows:
        return
    con.execute("BEGIN TRANSACTION")
    con.execute("DELETE FROM structures")
    con.executemany("INSERT INTO structures VALUES (?, ?, ?, ?, ?)", rows)
    con.execute("COMMIT")

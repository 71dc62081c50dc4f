#!/usr/bin/env python3
"""PostgreSQL's CPU for the writer's two statements (a batch of publishes, a batch of attempt
records), as written at two or more git revisions of `src/store/batch/postgres.rs`.

    pip install 'psycopg[binary]'
    python3 benches/statement_cpu.py --postgres postgres://postgres@127.0.0.1:5432/postgres \
        1d51e85 HEAD [variant=path/to/postgres.rs ...]

Loadgen measures everything at once on a machine whose speed drifts by several percent
between runs; this measures only the database's side of one batch shape, so two versions
of the statements can be told apart by a percent or two. Each revision gets its own
connection (its statements prepared there, as the writer's are) and its own tables, made by
its own migrations in a schema of its own in one fresh database, so a change of keys or
triggers counts with the statements (a `name=path` variant gets the working tree's); they
take turns in short blocks, in rotating order, so the tables grow alike under each. The CPU
is the backend's own on-CPU time (`/proc/<pid>/schedstat`), so PostgreSQL must run on this
machine. Commits do not wait for their WAL flush (`synchronous_commit = off` in these
sessions), which would otherwise make most of the time and the noise. It also prints how
many times each statement was planned generic and custom (a custom plan is made anew at
every execution).

The shape is loadgen (a)'s: one webhook, each event one delivery, every attempt succeeds at
once; by default 24 events per publish batch and their 24 records per records batch, on
tables that already hold 20,000 settled deliveries, analyzed (plans made on empty tables
are not the ones a running writer keeps). A revision whose statements check configuration
versions and lease epochs gets the current version and a held lease, as a server sharing
the database writes them. Arrays are sent in text form (the writer sends them binary), so
the absolute figures are higher than the writer's; compare revisions, not these with loadgen.
"""

import argparse
import os
import re
import subprocess
import sys
import time
import uuid

import psycopg

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = "src/store/batch/postgres.rs"
WORKSPACE = "ws_statement_cpu"
WEBHOOK = "wh_statement_cpu"


def statements(revision):
    """The publish and records statements' text at `revision` (as the Rust constants say):
    a git revision, or `name=path` for a copy of the source file on disk (a variant being
    tried)."""
    if "=" in revision:
        source = open(revision.split("=", 1)[1]).read()
    else:
        source = subprocess.check_output(["git", "-C", REPO, "show", f"{revision}:{SOURCE}"], text=True)

    def unescape(literal):
        return re.sub(r"\\\n\s*", "", literal).replace("\\\\", "\\")

    # `macro_rules! name { () => { "text" }; }`: pieces a `concat!` may name.
    pieces = {m.group(1): m.group(2) for m in re.finditer(r'macro_rules! (\w+) \{\s*\(\) => \{\s*"(.*?)"\s*\};', source, re.S)}

    def constant(name):
        value = re.search(r"const " + name + r": &str = (.*?);\n", source, re.S).group(1)
        # A literal, or `concat!` of literals and pieces.
        parts = re.findall(r'"((?:[^"\\]|\\.)*)"|(\w+)!\(\)', value, re.S)
        return "".join(unescape(literal or pieces[piece]) for literal, piece in parts)

    # The batches here announce nothing: the statement the writer sends for those.
    publish = "PUBLISH_QUIET_POSTGRES" if "const PUBLISH_QUIET_POSTGRES" in source else "PUBLISH_POSTGRES"
    return constant(publish), constant("RECORD_ATTEMPTS_POSTGRES")


def array(values):
    """A PostgreSQL array literal (text format) of strings, integers and NULLs."""

    def element(value):
        if value is None:
            return "NULL"
        if isinstance(value, int):
            return str(value)
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    return ("{" + ",".join(element(v) for v in values) + "}").encode()


def placeholders(sql):
    return max(int(n) for n in re.findall(r"\$(\d+)", sql))


def on_cpu_ns(pid):
    return int(open(f"/proc/{pid}/schedstat").read().split()[0])


def migrations(revision):
    """The PostgreSQL migrations (`up.sql`, in order) at a git revision, or in the working
    tree for a variant."""
    if revision is None:
        root = os.path.join(REPO, "migrations/postgres")
        return [open(os.path.join(root, d, "up.sql")).read() for d in sorted(os.listdir(root))]
    listing = subprocess.check_output(["git", "-C", REPO, "ls-tree", "--name-only", revision, "migrations/postgres/"], text=True)
    return [
        subprocess.check_output(["git", "-C", REPO, "show", f"{revision}:{d}/up.sql"], text=True)
        for d in sorted(listing.split())
    ]


class Revision:
    def __init__(self, url, revision, schema, rows):
        self.name = revision.split("=", 1)[0]
        publish_sql, records_sql = statements(revision)
        self.conn = psycopg.connect(url, autocommit=True, options=f"-c search_path={schema}")
        self.setup(schema, None if "=" in revision else revision, rows)
        self.conn.execute("SET synchronous_commit = off")
        self.pid = self.conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        # How many parameters each statement takes: a revision's take fewer than the batch
        # below offers when it predates the later ones.
        self.parameters = {}
        for name, sql in (("publish", publish_sql), ("records", records_sql)):
            result = self.conn.pgconn.prepare(name.encode(), sql.encode())
            assert result.status == psycopg.pq.ExecStatus.COMMAND_OK, result.error_message
            self.parameters[name] = placeholders(sql)
        self.cpu = {"publish": 0, "records": 0}
        self.batches = 0

    def setup(self, schema, revision, rows):
        """The revision's own tables (its migrations, in a schema of its own, so a change of
        keys or triggers counts too), one webhook whose lease this session holds, and a
        table of settled deliveries, analyzed, as a run has after its first seconds: plans
        made on empty tables are not the ones the writer runs with for long."""
        c = self.conn
        c.execute(f"CREATE SCHEMA {schema}")
        for sql in migrations(revision):
            c.execute(sql.encode())
        c.execute("INSERT INTO workspaces (id, name, created_at) VALUES (%s, 'bench', 0)", (WORKSPACE,))
        c.execute(
            "INSERT INTO webhooks (id, workspace_id, name, url, events, secret, enabled, timeout_ms, max_retries, "
            "backoff_base_ms, max_in_flight, headers, created_at, updated_at) "
            "VALUES (%s, %s, 'bench', 'http://127.0.0.1:9/', '[\"*\"]', 'secret', true, 5000, 3, 1000, 64, '{}', 0, 0)",
            (WEBHOOK, WORKSPACE),
        )
        self.version = None
        if c.execute("SELECT to_regclass('webhook_leases') IS NOT NULL").fetchone()[0]:
            c.execute("UPDATE webhook_leases SET owner = 'bench', epoch = 1, expires_at = 9000000000000000")
            self.version = c.execute("SELECT version FROM cluster_config").fetchone()[0]
        c.execute(
            "INSERT INTO events SELECT %s, 'pre' || n, 'artifact.completed', '{}', 'hash', 1, 0 "
            "FROM generate_series(1, %s) AS n",
            (WORKSPACE, rows),
        )
        c.execute(
            "INSERT INTO deliveries (id, workspace_id, webhook_id, event_id, event_type, status, attempt_count, "
            "created_at, last_attempt_at) SELECT 'dpre' || n, %s, %s, 'pre' || n, 'artifact.completed', "
            "'succeeded', 1, 0, 0 FROM generate_series(1, %s) AS n",
            (WORKSPACE, WEBHOOK, rows),
        )
        c.execute("ANALYZE")

    def execute(self, name, params, counted):
        args = [array(p) for p in params[: self.parameters[name]]]
        before = on_cpu_ns(self.pid)
        result = self.conn.pgconn.exec_prepared(name.encode(), args)
        if counted:
            self.cpu[name] += on_cpu_ns(self.pid) - before
        ok = (psycopg.pq.ExecStatus.COMMAND_OK, psycopg.pq.ExecStatus.TUPLES_OK)
        assert result.status in ok, result.error_message.decode()
        return result

    def batch(self, n, counted):
        now = int(time.time() * 1000)
        ids = [uuid.uuid4().hex for _ in range(n)]
        deliveries = ["d" + i for i in ids]
        # Parameters by number; a revision's statement takes as many as it names.
        publish = [
            [WORKSPACE] * n, ids, ["artifact.completed"] * n, ['{"n":1}'] * n, ["hash"] * n, [1] * n, [now] * n,
            deliveries, [WORKSPACE] * n, [WEBHOOK] * n, ids, ["artifact.completed"] * n, ["pending"] * n,
            [0] * n, [now] * n, [now] * n, [0] * n,
            [self.version] * n, [], [], [], [],
        ]
        result = self.execute("publish", publish, counted)
        written = sum(1 for row in range(result.ntuples) if result.get_value(row, 0) == WORKSPACE.encode())
        assert written == n, f"{self.name}: {written} of {n} events written"
        records = [
            deliveries, ["succeeded"] * n, [1] * n, [0] * n, [None] * n, [200] * n, [None] * n, ["ok"] * n,
            [3] * n, [now] * n, [now] * n,
            [], [], [], [], [], [], [], [],
            [None] * n, [1] * n, [WEBHOOK], [1],
        ]
        self.execute("records", records, counted)
        if counted:
            self.batches += 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", required=True, help="a server URL; a database of its own is made and dropped")
    parser.add_argument("--batch", type=int, default=24, help="events per publish batch (and records per records batch)")
    parser.add_argument("--blocks", type=int, default=20, help="turns each revision takes")
    parser.add_argument("--block", type=int, default=60, help="batches per turn")
    parser.add_argument("--rows", type=int, default=20000, help="settled deliveries in the tables before")
    parser.add_argument("revisions", nargs="+")
    args = parser.parse_args()

    database = f"statement_cpu_{os.getpid()}"
    admin = psycopg.connect(args.postgres, autocommit=True)
    admin.execute(f"CREATE DATABASE {database}")
    url = args.postgres.rsplit("/", 1)[0] + "/" + database
    try:
        revisions = [Revision(url, name, f"revision_{i}", args.rows) for i, name in enumerate(args.revisions)]
        for block in range(args.blocks):
            turn = block % len(revisions)
            for revision in revisions[turn:] + revisions[:turn]:
                for _ in range(3):
                    revision.batch(args.batch, counted=False)
                for _ in range(args.block):
                    revision.batch(args.batch, counted=True)
        print(f"PostgreSQL CPU per batch of {args.batch} (µs), {args.blocks} x {args.block} batches each:")
        print("| revision | publishes | records | both, per event |")
        print("|---|---|---|---|")
        for r in revisions:
            publish, records = (r.cpu[k] / 1e3 / r.batches for k in ("publish", "records"))
            print(f"| {r.name} | {publish:.0f} | {records:.0f} | {(publish + records) / args.batch:.2f} |")
        # Custom plans are planned again at every execution; a generic one is planned once.
        for r in revisions:
            plans = r.conn.execute("SELECT name, generic_plans, custom_plans FROM pg_prepared_statements ORDER BY name")
            print(f"{r.name} plans (generic, custom): " + ", ".join(f"{n} {g}, {c}" for n, g, c in plans.fetchall()))
        for r in revisions:
            r.conn.close()
    finally:
        admin.execute(f"DROP DATABASE {database} WITH (FORCE)")


if __name__ == "__main__":
    sys.exit(main())

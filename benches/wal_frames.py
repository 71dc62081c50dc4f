#!/usr/bin/env python3
"""How many bytes SQLite's WAL takes per published event, for the shapes the load scenarios
write, on hookbus' own schema (migrations/sqlite, applied in order) and for a few page sizes.

    python3 benches/wal_frames.py

Each shape publishes events (one `events` row and one `deliveries` row per webhook, ids
time-ordered like hookbus' UUID v7) in commits of the size the writer makes under that load,
then settles the deliveries in commits of records, as hookbus does, and counts the WAL frames
that were written (`wal_autocheckpoint` off, so the WAL only grows). It measures the storage
layout, not hookbus: no fsync, no HTTP, Python's own sqlite3 module.
"""

import itertools
import json
import os
import pathlib
import sqlite3
import tempfile
import time

MIGRATIONS = pathlib.Path(__file__).resolve().parent.parent / "migrations" / "sqlite"
WORKSPACE = "00000000-0000-0000-0000-000000000000"
counter = itertools.count()


def uuid_v7():
    """A UUID v7 string: milliseconds first, so ids sort by creation as hookbus' do."""
    digits = "%012x%04x%016x" % (
        time.time_ns() // 1_000_000,
        0x7000 | (next(counter) & 0xFFF),
        0x8000000000000000 | int.from_bytes(os.urandom(8), "big") >> 2,
    )
    return "-".join((digits[:8], digits[8:12], digits[12:16], digits[16:20], digits[20:]))


def open_database(path, page_size):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(f"PRAGMA page_size = {page_size}")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = OFF")
    db.execute("PRAGMA wal_autocheckpoint = 0")
    for migration in sorted(MIGRATIONS.iterdir()):
        db.executescript((migration / "up.sql").read_text())
    return db


def publish(db, webhooks, events):
    delivery_ids = []
    db.execute("BEGIN IMMEDIATE")
    for _ in range(events):
        event_id, now = uuid_v7(), int(time.time() * 1000)
        data = json.dumps({"sent_us": now * 1000, "seq": 12345, "note": "x" * 40})
        db.execute(
            "INSERT INTO events (workspace_id, id, event_type, data, body_hash, matched_webhooks, created_at) "
            "VALUES (?, ?, 'artifact.completed', ?, ?, ?, ?)",
            (WORKSPACE, event_id, data, "ab" * 32, len(webhooks), now),
        )
        for webhook in webhooks:
            delivery_id = uuid_v7()
            db.execute(
                "INSERT INTO deliveries (id, workspace_id, webhook_id, event_id, event_type, status, "
                "attempt_count, created_at, retries_used) "
                "VALUES (?, ?, ?, ?, 'artifact.completed', 'pending', 0, ?, 0)",
                (delivery_id, WORKSPACE, webhook, event_id, now),
            )
            delivery_ids.append(delivery_id)
    db.execute("COMMIT")
    return delivery_ids


def settle(db, delivery_ids):
    db.execute("BEGIN IMMEDIATE")
    for delivery_id in delivery_ids:
        db.execute(
            "UPDATE deliveries SET status = 'succeeded', attempt_count = 1, status_code = 204, "
            "response_body = '', duration_ms = 1, completed_at = 1, last_attempt_at = 1 WHERE id = ?",
            (delivery_id,),
        )
    db.execute("COMMIT")


def measure(page_size, webhooks, per_commit, records_per_commit, events, warm_up):
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "hookbus.db")
        db = open_database(path, page_size)
        hooks = [uuid_v7() for _ in range(webhooks)]

        def run(count):
            pending, commits = [], 0
            for _ in range(count // per_commit):
                pending += publish(db, hooks, per_commit)
                commits += 1
                if len(pending) >= records_per_commit:
                    settle(db, pending)
                    pending, commits = [], commits + 1
            return commits

        run(warm_up)
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        commits = run(events)
        frames = (os.path.getsize(path + "-wal") - 32) // (page_size + 24)
        db.close()
        return frames * (page_size + 24) / events / 1024, frames / events, frames / commits


SHAPES = [
    # name, webhooks, events per publish commit, records per records commit, events, warm-up
    ("(a) 1 webhook, 48 events a commit", 1, 48, 128, 20_000, 20_000),
    ("(b) 100 webhooks, 8 events a commit", 100, 8, 800, 1_000, 1_000),
    ("(e) 10 webhooks, 1 event a commit", 10, 1, 100, 6_000, 6_000),
]

if __name__ == "__main__":
    print(f"SQLite {sqlite3.sqlite_version}, hookbus' schema from {MIGRATIONS}")
    print("| shape | page size | WAL KiB per event | frames per event | frames per commit |")
    print("|---|---|---|---|---|")
    for name, webhooks, per_commit, records, events, warm_up in SHAPES:
        for page_size in (1024, 2048, 4096):
            kib, frames, per = measure(page_size, webhooks, per_commit, records, events, warm_up)
            print(f"| {name} | {page_size} | {kib:.1f} | {frames:.2f} | {per:.1f} |")

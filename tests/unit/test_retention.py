"""Data retention on a real store: what is past its days goes, in chunks; what must survive stays."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from controller.config import RetentionSettings, load_config
from controller.ivr.port import Prompt
from controller.media.prompts import PromptRenderer, prompt_key
from controller.settings import SettingsError
from controller.store.db import Store
from controller.store.retention import DAY, RetentionJob

NOW = 1_800_000_000.0
OLD = NOW - 500 * DAY  # past the 400-day default
RECENT = NOW - 10 * DAY


@pytest.fixture
def store(engine_store: Store) -> Store:
    """On each store engine (tests/conftest.py)."""
    return engine_store


async def column(store: Store, sql: str) -> list[object]:
    return [row[0] for row in await store.fetchall(sql)]


async def test_old_records_go_and_what_must_survive_stays(store: Store) -> None:
    for call_id, started, ended in (("old", OLD, OLD + 60), ("old-open", OLD, None), ("new", RECENT, RECENT + 60)):
        store.write("INSERT INTO calls (call_id, channel_id, direction, started_at, ended_at)"
                    " VALUES (?, ?, 'inbound', ?, ?)", (call_id, call_id, started, ended))
        store.write("INSERT INTO call_events (call_id, at, kind) VALUES (?, ?, 'answered')", (call_id, started))
        store.write("INSERT INTO queue_calls (call_id, queue, enqueued_at, left_at) VALUES (?, 'q', ?, ?)",
                    (call_id, started, ended))
        store.write("INSERT INTO dispositions (call_id, at, disposition) VALUES (?, ?, 'resolved')", (call_id, started))
    for agent, at in (("1001", OLD), ("1001", OLD + 1), ("1001", RECENT), ("1002", OLD)):
        store.write("INSERT INTO agent_states (agent_id, at, state) VALUES (?, ?, 'ready')", (agent, at))
    for at in (NOW - 800 * DAY, NOW - 700 * DAY):  # the audit log is kept 730 days
        store.write("INSERT INTO audit_log (at, actor, action) VALUES (?, 'token:ops', 'token.create')", (at,))
    for n, at in enumerate((OLD, RECENT)):  # internal messages: 400 days; an alert's acknowledgement: 30
        store.write("INSERT INTO internal_messages (id, sender, recipient, text, sent_at) VALUES (?, 'boss', '1001',"
                    " 'hi', ?)", (f"m{n}", at))
        store.write("INSERT INTO alert_acks (alert_seq, acknowledged_by, acknowledged_at) VALUES (?, 'user:boss', ?)",
                    (n + 1, at))
    await store.flush()

    removed = await RetentionJob(store, RetentionSettings()).purge(now=NOW)

    assert await column(store, "SELECT call_id FROM calls ORDER BY call_id") == ["new", "old-open"]
    assert await column(store, "SELECT call_id FROM queue_calls ORDER BY call_id") == ["new", "old-open"]
    assert await column(store, "SELECT call_id FROM call_events ORDER BY id") == ["new"]
    assert await column(store, "SELECT call_id FROM dispositions") == ["new"]
    # 1002's only (old) state is its state now: kept; 1001's old ones go.
    assert await column(store, "SELECT agent_id || '@' || CAST(at AS INT) FROM agent_states ORDER BY id") == [
        f"1001@{int(RECENT)}", f"1002@{int(OLD)}"]
    assert await column(store, "SELECT CAST(at AS INT) FROM audit_log") == [int(NOW - 700 * DAY)]
    assert await column(store, "SELECT id FROM internal_messages") == ["m1"]
    assert await column(store, "SELECT alert_seq FROM alert_acks") == [2]
    assert removed == {"calls": 1, "queue_calls": 1, "dispositions": 2, "call_events": 2, "agent_states": 2,
                       "audit_log": 1, "cti_events": 0, "alert_acks": 1, "internal_messages": 1}


async def test_cti_events_a_webhook_has_not_delivered_are_kept(store: Store) -> None:
    for seq in range(1, 7):
        store.write("INSERT INTO cti_events (seq, at, type) VALUES (?, ?, 'call.started')", (seq, NOW - 40 * DAY))
    store.write("INSERT INTO cti_events (seq, at, type) VALUES (7, ?, 'call.started')", (NOW - DAY,))
    store.write("INSERT INTO webhook_cursor (webhook, delivered_seq) VALUES ('crm', 3), ('erp', 5), ('gone', 0)")
    # crm gave up on event 2 (a dead letter an operator may replay); 'gone' is no longer configured.
    store.write("INSERT INTO webhook_deliveries (webhook, seq, attempts, last_error, state) VALUES"
                " ('crm', 2, 10, 'HTTP 400', 'dead'), ('gone', 1, 3, 'HTTP 500', 'retrying')")
    await store.flush()
    job = RetentionJob(store, RetentionSettings(), webhooks=["crm", "erp"])
    assert (await job.purge(now=NOW))["cti_events"] == 2
    assert await column(store, "SELECT seq FROM cti_events ORDER BY seq") == [2, 4, 5, 6, 7]
    store.write("UPDATE webhook_cursor SET delivered_seq = 7 WHERE webhook = 'crm'")
    store.write("UPDATE webhook_cursor SET delivered_seq = 7 WHERE webhook = 'erp'")
    store.write("UPDATE webhook_deliveries SET delivered_at = ?, state = 'delivered' WHERE seq = 2",
                (NOW,))  # replayed, delivered
    assert (await job.purge(now=NOW))["cti_events"] == 4
    assert await column(store, "SELECT seq FROM cti_events") == [7]  # recent: kept although delivered


async def test_deletes_in_chunks_each_its_own_commit(store: Store) -> None:
    for n in range(10):
        store.write("INSERT INTO call_events (call_id, at, kind) VALUES ('c', ?, 'dtmf')", (OLD + n,))
    store.write("INSERT INTO call_events (call_id, at, kind) VALUES ('c', ?, 'dtmf')", (RECENT,))
    await store.flush()
    commits = store.commits
    job = RetentionJob(store, RetentionSettings(chunk_rows=3), pause_seconds=0)
    assert (await job.purge(now=NOW))["call_events"] == 10
    assert store.commits - commits >= 4  # 3 + 3 + 3 + 1: the writer is never held for the whole table
    assert await column(store, "SELECT at FROM call_events") == [RECENT]


async def test_zero_days_keeps_everything(store: Store) -> None:
    await store.execute("INSERT INTO call_events (call_id, at, kind) VALUES ('c', ?, 'dtmf')", (OLD,))
    settings = RetentionSettings(calls_days=0, call_events_days=0, agent_states_days=0, cti_events_days=0,
                                 tts_cache_days=0, audit_days=0, messages_days=0)
    assert await RetentionJob(store, settings).purge(now=NOW) == {}
    assert await column(store, "SELECT count(*) FROM call_events") == [1]


async def test_a_failing_run_is_logged_and_the_job_goes_on(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    await store.close()  # every statement now fails
    job = RetentionJob(store, RetentionSettings())
    task = asyncio.create_task(job.run(every_seconds=0.01, first_after=0))
    await asyncio.sleep(0.1)
    assert not task.done()  # still running: never ends the controller's task group
    task.cancel()
    assert "retention: this run stopped early" in caplog.text


def test_retention_settings_are_checked(tmp_path: Path) -> None:
    path = tmp_path / "controller.yaml"
    path.write_text("retention:\n  cti_events_days: -1\n  calls_days: 30\n")
    with pytest.raises(SettingsError) as raised:
        load_config(path)
    problem = raised.value.problems[0]
    assert problem.startswith(f"{path}:2:") and "cti_events_days: expected a number of days" in problem
    path.write_text("retention:\n  calls_days: 30\n  chunk_rows: 100\n")
    assert load_config(path).retention == RetentionSettings(calls_days=30.0, chunk_rows=100)


async def test_the_tts_cache_keeps_what_is_used(tmp_path: Path) -> None:
    renderer = PromptRenderer(tmp_path)
    renderer.tts_dir.mkdir(parents=True)
    recorded = tmp_path / "ccc" / "recorded"
    recorded.mkdir()
    week_ago = time.time() - 8 * DAY
    used = Prompt("tts", "您的余额是十二元")
    used_file = renderer.tts_dir / f"{prompt_key(used.value, 'zh', renderer.engine.name)}.wav"
    files = [used_file, renderer.tts_dir / "unused.wav", renderer.tts_dir / ".half.123.partial.wav",
             recorded / "studio.wav"]
    for file in files:
        file.write_bytes(b"RIFF")
        os.utime(file, (week_ago, week_ago))
    fresh = renderer.tts_dir / "fresh.wav"
    fresh.write_bytes(b"RIFF")
    assert await renderer.media_for(used) == f"sound:ccc/tts/{used_file.stem}"  # a cache hit counts as a use

    job = RetentionJob(Store(tmp_path / "unused.sqlite3"), RetentionSettings(calls_days=0, call_events_days=0,
                       agent_states_days=0, cti_events_days=0, audit_days=0,
                       messages_days=0), purge_tts=renderer.purge_cache)
    assert await job.purge() == {"tts_cache": 2}
    assert sorted(p.name for p in renderer.tts_dir.iterdir()) == sorted(["fresh.wav", used_file.name])
    assert (recorded / "studio.wav").exists()  # studio recordings are not a cache
    assert os.stat(used_file).st_mtime > week_ago + DAY  # the use survives a restart (file time refreshed)


async def test_with_delivery_states_only_dead_letters_keep_their_events(store: Store) -> None:
    """With the dead-letter schema (a `state` per delivery row), rows marked delivered do not keep events."""
    for seq in (1, 2, 3):
        store.write("INSERT INTO cti_events (seq, at, type) VALUES (?, ?, 'call.started')", (seq, NOW - 40 * DAY))
    store.write("INSERT INTO webhook_cursor (webhook, delivered_seq) VALUES ('crm', 3)")
    store.write("INSERT INTO webhook_deliveries (webhook, seq, attempts, state) VALUES"
                " ('crm', 1, 2, 'delivered'), ('crm', 2, 10, 'dead')")
    await store.flush()
    assert (await RetentionJob(store, RetentionSettings(), webhooks=["crm"]).purge(now=NOW))["cti_events"] == 2
    assert await column(store, "SELECT seq FROM cti_events") == [2]


async def test_cti_events_are_purged_oldest_first_without_reading_the_recent_ones(store: Store) -> None:
    """The stream has no index on time (each call's ~15 events rewrote its last page at every commit): its oldest
    events are walked by sequence number up to the first recent one, not found by reading all of them; an old
    event a webhook still owes is passed over, not walked again at each chunk."""
    old = [(seq, NOW - 40 * DAY) for seq in range(1, 6)]
    recent = [(seq, NOW - 600 + seq / 100) for seq in range(6, 20_006)]
    await store.executemany("INSERT INTO cti_events (seq, at, type) VALUES (?, ?, 'call.started')", old + recent)
    await store.execute("INSERT INTO webhook_deliveries (webhook, seq, state) VALUES ('crm', 2, 'dead')")
    settings = RetentionSettings(calls_days=0, call_events_days=0, agent_states_days=0, audit_days=0,
                                 messages_days=0, chunk_rows=2)
    await store.execute("INSERT INTO webhook_cursor (webhook, delivered_seq) VALUES ('crm', 20005)")
    job = RetentionJob(store, settings, webhooks=["crm"], pause_seconds=0)
    if store.engine_name != "sqlite":
        assert (await job.purge(now=NOW))["cti_events"] == 4
    else:
        from tests.conftest import SqliteSteps

        with SqliteSteps(store) as steps:
            assert (await job.purge(now=NOW))["cti_events"] == 4
        assert steps.count < 20_000, steps.count  # (reading the 20,000 recent events took ~400,000)
    assert await column(store, "SELECT seq FROM cti_events WHERE seq < 7 ORDER BY seq") == [2, 6]

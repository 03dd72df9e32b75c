"""The store's schema, as numbered migrations, run at start on either engine (SQLite's `PRAGMA
user_version`, PostgreSQL's `schema_version` table count how many have run).

Append a new string to add tables or columns; never edit one that has shipped. Write it in the SQL both
engines take: SQLite's type names INTEGER, REAL, TEXT, BLOB and `INTEGER PRIMARY KEY` for a generated id
(on PostgreSQL they become BIGINT, DOUBLE PRECISION, TEXT, BYTEA and an identity column); plain CREATE
TABLE / CREATE INDEX / ALTER TABLE ADD COLUMN; no PRAGMA, no `INSERT OR ...` (use ON CONFLICT), no
SQLite-only functions. A generated id is never also given explicitly in an INSERT (PostgreSQL's identity
would not move past it); a table whose key the code chooses declares it so (`seq INTEGER PRIMARY KEY` is
fine when every INSERT gives it). tests/unit/test_store_engines.py runs every migration on both engines.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: calls and what happened during them
    """
    CREATE TABLE calls (
        call_id TEXT PRIMARY KEY,
        channel_id TEXT NOT NULL,
        direction TEXT NOT NULL,            -- inbound | outbound
        caller TEXT NOT NULL DEFAULT '',
        did TEXT NOT NULL DEFAULT '',
        flow TEXT,
        started_at REAL NOT NULL,
        answered_at REAL,
        ended_at REAL,
        end_reason TEXT,                    -- caller_hangup | controller_hangup | fallback | lost | ...
        hangup_cause INTEGER,
        hangup_cause_txt TEXT,
        data TEXT NOT NULL DEFAULT '{}'     -- JSON: what the IVR collected, tier, region, ...
    );
    CREATE INDEX calls_channel ON calls(channel_id);
    CREATE INDEX calls_started ON calls(started_at);
    CREATE INDEX calls_caller ON calls(caller, started_at);
    CREATE INDEX calls_open ON calls(ended_at) WHERE ended_at IS NULL;

    CREATE TABLE call_events (
        id INTEGER PRIMARY KEY,
        call_id TEXT NOT NULL,
        at REAL NOT NULL,
        kind TEXT NOT NULL,                 -- answered, playback, dtmf, node, ...
        detail TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX call_events_call ON call_events(call_id, id);
    """,
    # 2: what callers left in the IVR: voicemails, callback tasks, survey answers
    """
    CREATE TABLE ivr_records (
        id INTEGER PRIMARY KEY,
        call_id TEXT NOT NULL,
        kind TEXT NOT NULL,                 -- voicemail | callback | survey
        created_at REAL NOT NULL,
        caller TEXT NOT NULL DEFAULT '',
        did TEXT NOT NULL DEFAULT '',
        payload TEXT NOT NULL DEFAULT '{}', -- JSON: recording name and duration, number and due time, rating
        status TEXT NOT NULL DEFAULT 'open' -- callbacks: open | done
    );
    CREATE INDEX ivr_records_kind ON ivr_records(kind, created_at);
    CREATE INDEX ivr_records_call ON ivr_records(call_id);
    """,
    # 3: the CTI event stream (sequence numbers survive restarts) and the webhook outbox
    """
    CREATE TABLE cti_events (
        seq INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        type TEXT NOT NULL,
        call_id TEXT,
        agent_id TEXT,
        queue TEXT,
        data TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX cti_events_at ON cti_events(at);
    CREATE TABLE webhook_deliveries (
        webhook TEXT NOT NULL,
        seq INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        delivered_at REAL,
        PRIMARY KEY (webhook, seq)
    );
    CREATE TABLE webhook_cursor (
        webhook TEXT PRIMARY KEY,
        delivered_seq INTEGER NOT NULL   -- every event up to this one was delivered
    );
    """,
    # 4: the ACD: one row per queued call, agent state changes, and the engine's agent snapshot
    """
    CREATE TABLE queue_calls (
        id INTEGER PRIMARY KEY,
        call_id TEXT NOT NULL,
        queue TEXT NOT NULL,
        enqueued_at REAL NOT NULL,
        priority INTEGER NOT NULL DEFAULT 0,
        left_at REAL,
        outcome TEXT,                       -- answered | abandoned | overflowed (NULL while waiting)
        wait_seconds REAL,
        agent_id TEXT,
        answered_at REAL,
        talk_ended_at REAL,
        overflow_target TEXT,
        offers TEXT NOT NULL DEFAULT '[]'   -- JSON: [{agent_id, at, ring_seconds, result}]
    );
    CREATE INDEX queue_calls_call ON queue_calls(call_id);
    CREATE INDEX queue_calls_enqueued ON queue_calls(enqueued_at);
    CREATE TABLE agent_states (
        id INTEGER PRIMARY KEY,
        agent_id TEXT NOT NULL,
        at REAL NOT NULL,
        state TEXT NOT NULL,                -- logged_out ready not_ready ringing talking on_hold acw
        reason TEXT,
        previous TEXT
    );
    CREATE INDEX agent_states_agent ON agent_states(agent_id, at);
    CREATE INDEX agent_states_at ON agent_states(at);
    CREATE TABLE acd_snapshot (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        saved_at REAL NOT NULL,
        snapshot TEXT NOT NULL              -- JSON: AcdEngine.snapshot()
    );
    """,
    # 5: a number's call history (来电历史) and agents' dispositions and notes after a call
    """
    CREATE INDEX calls_did ON calls(did, started_at);
    CREATE TABLE dispositions (
        call_id TEXT PRIMARY KEY,
        at REAL NOT NULL,
        agent_id TEXT,
        disposition TEXT NOT NULL,          -- resolved | follow_up | complaint | wrong_number | ... (free)
        notes TEXT NOT NULL DEFAULT ''
    );
    """,
    # 6: the recordings index (one mixed file per recorded call)
    """
    CREATE TABLE recordings (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,          -- Asterisk's recording name = the file name without .wav
        call_id TEXT NOT NULL,
        caller TEXT NOT NULL DEFAULT '',
        queue TEXT,
        agents TEXT NOT NULL DEFAULT '[]',  -- JSON: agents heard on the recording, in order
        started_at REAL NOT NULL,
        ended_at REAL,
        duration REAL,
        file TEXT NOT NULL,
        pauses TEXT NOT NULL DEFAULT '[]',  -- JSON: [[start, end], ...] seconds into the file (silence)
        reason TEXT NOT NULL,               -- queue_policy | on_demand
        deleted_at REAL                     -- retention removed the file
    );
    CREATE INDEX recordings_call ON recordings(call_id);
    CREATE INDEX recordings_started ON recordings(started_at);
    """,
    # 7: webhook dead letters: each delivery row gets a state; rows from before were delivered in the end
    """
    ALTER TABLE webhook_deliveries ADD COLUMN state TEXT NOT NULL DEFAULT 'delivered';
        -- retrying (the worker is on it) | dead (refused max_attempts times: a dead letter)
        -- | requeued (an operator asked for it again) | delivered
    ALTER TABLE webhook_deliveries ADD COLUMN failed_at REAL;
    CREATE INDEX webhook_deliveries_state ON webhook_deliveries(webhook, state, seq);
    """,
    # 8: the live-call picture (issue 13): what a new process needs to take every live call over, one row per
    # call and part ("call", "ivr", "queue", "ring", "talk", "recording"); each capability writes its own part
    """
    CREATE TABLE live_calls (
        call_id TEXT NOT NULL,
        part TEXT NOT NULL,
        data TEXT NOT NULL,                 -- JSON, owned by the part's capability
        updated_at REAL NOT NULL,
        PRIMARY KEY (call_id, part)
    );
    """,
    # 9: people and integrations (users, API tokens, sessions) and the audit log
    """
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL,                 -- agent | supervisor | admin
        agent_id TEXT,
        password_hash TEXT NOT NULL,        -- argon2id
        failures INTEGER NOT NULL DEFAULT 0,  -- wrong passwords in a row
        locked_until REAL,
        created_at REAL NOT NULL,
        password_changed_at REAL NOT NULL
    );
    CREATE TABLE api_tokens (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,                 -- agent | supervisor | admin | integration
        agent_id TEXT,
        token_hash TEXT NOT NULL UNIQUE,    -- SHA-256 of the token (the token itself is never stored)
        created_at REAL NOT NULL,
        created_by TEXT NOT NULL,
        expires_at REAL,
        revoked_at REAL
    );
    CREATE TABLE sessions (
        id_hash TEXT PRIMARY KEY,           -- SHA-256 of the cookie's value
        user_name TEXT NOT NULL,
        csrf TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE INDEX sessions_user ON sessions(user_name);
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        at REAL NOT NULL,
        actor TEXT NOT NULL,                -- user:NAME, token:NAME, or the name tried at a failed login
        role TEXT,
        action TEXT NOT NULL,               -- login, login_failed, token.create, POST /api/flows/reload, ...
        target TEXT,
        before TEXT,                        -- JSON
        after TEXT,                         -- JSON
        status INTEGER
    );
    CREATE INDEX audit_log_at ON audit_log(at);
    CREATE INDEX audit_log_actor ON audit_log(actor, at);
    """,
    # 10: the managed configuration (README "Administration (live configuration)"): agents, queues, not-ready
    # reasons, standard prompts, ACD settings, service standards, DIDs, webhooks, one row per item
    """
    CREATE TABLE admin_items (
        kind TEXT NOT NULL,                 -- agent | queue | not_ready_reason | standard_prompt | acd_setting | ...
        key TEXT NOT NULL,                  -- the item's key within its kind (agent id, queue name, DID, ...)
        data TEXT NOT NULL,                 -- JSON: the item as the configuration file writes it
        position INTEGER NOT NULL DEFAULT 0,  -- its place in its section (the file's order; new ones last)
        updated_at REAL NOT NULL,
        updated_by TEXT NOT NULL,           -- the audit log's actor (user:NAME, token:NAME, config-file)
        PRIMARY KEY (kind, key)
    );
    CREATE TABLE admin_meta (
        name TEXT PRIMARY KEY,              -- seeded_at: when the configuration file seeded admin_items
        value TEXT
    );
    """,
    # 11: agents' schedules (workforce management): shifts and the activities inside them
    """
    CREATE TABLE agent_shifts (
        id INTEGER PRIMARY KEY,
        agent_id TEXT NOT NULL,
        starts_at REAL NOT NULL,            -- (not `start`/`end`: END is reserved in PostgreSQL)
        ends_at REAL NOT NULL,
        activity TEXT NOT NULL,             -- work | break | meal | training | meeting | off
        created_at REAL NOT NULL,
        created_by TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX agent_shifts_agent ON agent_shifts(agent_id, starts_at);
    CREATE INDEX agent_shifts_start ON agent_shifts(starts_at, ends_at);
    """,
    # 12: retention deletes dispositions by time (PostgreSQL has no rowid to take the oldest by)
    """
    CREATE INDEX dispositions_at ON dispositions(at);
    """,
    # 13: voicemail (and fax) as work: inbox items for a queue or a person; follow-up tasks (工单) from calls
    """
    CREATE TABLE inbox_items (
        id TEXT PRIMARY KEY,                -- chosen by the controller (hex)
        kind TEXT NOT NULL,                 -- voicemail | fax
        source TEXT NOT NULL UNIQUE,        -- flow:<ivr_records id> | fallback:<app_voicemail msg_id>: imported once
        call_id TEXT,
        caller TEXT NOT NULL DEFAULT '',
        did TEXT NOT NULL DEFAULT '',
        queue TEXT,
        agent_id TEXT,                      -- the person it is addressed or assigned to
        created_at REAL NOT NULL,
        duration REAL,
        file TEXT NOT NULL,
        data TEXT NOT NULL DEFAULT '{}',    -- JSON: the IVR data of the call, the flow
        status TEXT NOT NULL DEFAULT 'new', -- new | assigned | called_back | done
        assigned_at REAL,
        callback_call_id TEXT,
        called_back_at REAL,
        done_at REAL,
        done_by TEXT,
        note TEXT,
        deleted_at REAL                     -- retention removed the file
    );
    CREATE INDEX inbox_items_created ON inbox_items(created_at);
    CREATE INDEX inbox_items_queue ON inbox_items(queue, status);
    CREATE TABLE inbox_cursor (
        name TEXT PRIMARY KEY,              -- flow_voicemail: the last ivr_records id imported
        value INTEGER NOT NULL
    );
    CREATE TABLE follow_up_tasks (
        id TEXT PRIMARY KEY,
        call_id TEXT,
        title TEXT NOT NULL,
        created_by TEXT NOT NULL,           -- the agent (or token/user) who created it
        created_at REAL NOT NULL,
        agent_id TEXT,                      -- for whom: an agent, or
        queue TEXT,                         -- a queue (any of its agents)
        due_at REAL NOT NULL,
        reminded_at REAL,
        overdue_at REAL,                    -- when the overdue alert was raised
        status TEXT NOT NULL DEFAULT 'open',  -- open | closed
        closed_at REAL,
        closed_by TEXT,
        note TEXT
    );
    CREATE INDEX follow_up_tasks_open ON follow_up_tasks(status, due_at);
    """,
    # 14: callbacks (README "Callbacks"): virtual hold (the caller's place kept in the queue) and scheduled ones;
    # a declined offer is a row too (for the KPIs); the row is what a restarted controller queues again
    """
    CREATE TABLE callbacks (
        id INTEGER PRIMARY KEY,
        call_id TEXT NOT NULL,              -- the caller's call (virtual hold) or the call it was asked on
        origin TEXT NOT NULL,               -- virtual_hold | ivr | agent
        queue TEXT NOT NULL,
        number TEXT NOT NULL DEFAULT '',
        priority INTEGER NOT NULL DEFAULT 0,
        agent_id TEXT,                      -- a personal callback: only this agent takes it
        status TEXT NOT NULL,               -- declined|scheduled|waiting|serving|retry|connected|failed|done
        requested_at REAL NOT NULL,
        enqueued_at REAL,                   -- its place in the queue: the original time (kept over retries, restarts)
        due_at REAL,                        -- scheduled, or the next retry
        attempts INTEGER NOT NULL DEFAULT 0,
        connected_at REAL,
        outcome TEXT,                       -- the last attempt: answered | busy | no_answer | failed | max_wait ...
        data TEXT NOT NULL DEFAULT '{}',    -- JSON: the IVR data for the screen pop
        note TEXT,
        updated_at REAL NOT NULL
    );
    CREATE INDEX callbacks_status ON callbacks(status, due_at);
    CREATE INDEX callbacks_requested ON callbacks(requested_at);
    """,
    # 15: outbound campaigns (README "Outbound campaigns"): settings, contacts, attempts, do-not-call lists
    """
    CREATE TABLE campaigns (
        name TEXT PRIMARY KEY,
        settings TEXT NOT NULL,             -- JSON: controller.outbound.campaign.CampaignSettings
        status TEXT NOT NULL,               -- draft | running | paused | stopped | finished
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE TABLE campaign_contacts (
        campaign TEXT NOT NULL,
        contact_no INTEGER NOT NULL,        -- chosen by the controller, per campaign
        number TEXT NOT NULL,               -- E.164
        name TEXT NOT NULL DEFAULT '',
        region TEXT NOT NULL DEFAULT '',
        zones TEXT NOT NULL DEFAULT '[]',   -- JSON: the callee's time zones
        fields TEXT NOT NULL DEFAULT '{}',  -- JSON: custom fields (screen pop)
        status TEXT NOT NULL,               -- pending | dialing | retry | done | failed | dnc
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at REAL,                       -- when the next attempt is due
        last_outcome TEXT,
        disposition TEXT,
        updated_at REAL NOT NULL,
        PRIMARY KEY (campaign, contact_no)
    );
    CREATE INDEX campaign_contacts_due ON campaign_contacts(campaign, status, next_at);
    CREATE TABLE campaign_attempts (
        id INTEGER PRIMARY KEY,
        campaign TEXT NOT NULL,
        contact_no INTEGER NOT NULL,
        call_id TEXT NOT NULL,
        agent_id TEXT,
        started_at REAL NOT NULL,
        answered_at REAL,
        ended_at REAL,
        outcome TEXT                        -- answered | busy | no_answer | rejected | failed | abandoned
    );
    CREATE INDEX campaign_attempts_campaign ON campaign_attempts(campaign, started_at);
    CREATE TABLE do_not_call (
        number TEXT NOT NULL,               -- E.164
        campaign TEXT NOT NULL,             -- '' for the global list
        added_at REAL NOT NULL,
        reason TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (number, campaign)
    );
    """,
    # 16: faxes received (the inbox item has the document) and sent (the API), with their outcome
    """
    CREATE TABLE faxes (
        id TEXT PRIMARY KEY,                -- chosen by the controller (hex); names the spool files
        direction TEXT NOT NULL,            -- out (received faxes are inbox items of kind fax)
        number TEXT NOT NULL,               -- the number dialled
        created_by TEXT NOT NULL,
        created_at REAL NOT NULL,
        pages INTEGER,                      -- of the document; pages_sent: what the far end took
        status TEXT NOT NULL DEFAULT 'sending',  -- sending | sent | failed
        pages_sent INTEGER,
        fax_status TEXT,                    -- Asterisk's FAXSTATUS (SUCCESS | FAILED)
        error TEXT,                         -- FAXERROR, or why the call did not connect
        ended_at REAL
    );
    CREATE INDEX faxes_status ON faxes(status);
    """,
    # 17: quality assurance (README "Quality assurance"): scoring forms, each change a new version (a score keeps
    # the version it was given with), and the scores of recorded calls with comments at points of the recording
    """
    CREATE TABLE qa_forms (
        name TEXT NOT NULL,
        version INTEGER NOT NULL,           -- 1, 2, ...: a changed form is a new version, old ones stay
        definition TEXT NOT NULL,           -- JSON: {title, criteria: [{key, label, weight, max_points, critical}]}
        created_at REAL NOT NULL,
        created_by TEXT NOT NULL,
        retired_at REAL,                    -- set on the latest version when the form is removed: no new scores
        PRIMARY KEY (name, version)
    );
    CREATE TABLE qa_scores (
        id TEXT PRIMARY KEY,                -- chosen by the controller (hex)
        recording_id INTEGER NOT NULL,
        call_id TEXT NOT NULL,
        agent_id TEXT NOT NULL,             -- the agent scored
        form TEXT NOT NULL,
        form_version INTEGER NOT NULL,
        scorer TEXT NOT NULL,               -- the actor (user:NAME, token:NAME)
        scored_at REAL NOT NULL,
        score REAL NOT NULL,                -- 0-100, weighted; 0 when a critical criterion got no points
        critical_failed INTEGER NOT NULL DEFAULT 0,
        points TEXT NOT NULL,               -- JSON: {criterion key: points}
        comments TEXT NOT NULL DEFAULT '[]',  -- JSON: [{at: seconds into the recording, text}]
        summary TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX qa_scores_agent ON qa_scores(agent_id, scored_at);
    CREATE INDEX qa_scores_scored ON qa_scores(scored_at);
    CREATE INDEX qa_scores_recording ON qa_scores(recording_id);
    """,
    # 18: internal messages between agents and supervisors, and who acknowledged which alert (README
    # "Supervisor console")
    """
    CREATE TABLE internal_messages (
        id TEXT PRIMARY KEY,                -- chosen by the controller (hex)
        sender TEXT NOT NULL,               -- user names
        recipient TEXT NOT NULL,
        text TEXT NOT NULL,
        sent_at REAL NOT NULL,
        read_at REAL
    );
    CREATE INDEX internal_messages_recipient ON internal_messages(recipient, read_at);
    CREATE INDEX internal_messages_sender ON internal_messages(sender, sent_at);
    CREATE INDEX internal_messages_sent ON internal_messages(sent_at);
    CREATE TABLE alert_acks (
        alert_seq INTEGER PRIMARY KEY,      -- the alert.raised event's sequence number (cti_events.seq)
        acknowledged_by TEXT NOT NULL,
        acknowledged_at REAL NOT NULL,
        note TEXT NOT NULL DEFAULT ''
    );
    """,
    # 19: the ACD's saved state one row per agent and per queue, each rewritten only when it changed (README
    # "Benchmarks", third round); acd_snapshot's single row is read once more by a controller upgraded from it
    """
    CREATE TABLE acd_saved_agents (
        agent_id TEXT PRIMARY KEY,
        saved_at REAL NOT NULL,
        snapshot TEXT NOT NULL              -- JSON: the agent's part of AcdEngine.snapshot()["agents"]
    );
    CREATE TABLE acd_saved_queues (
        queue TEXT PRIMARY KEY,
        saved_at REAL NOT NULL,
        talks TEXT NOT NULL,                -- JSON: [[ended at, seconds], ...], the queue's recent talk times
        rings TEXT NOT NULL                 -- JSON: the same for its rings (offer to answer)
    );
    """,
    # 20: the live-call picture one row per call, every part in it (README "Benchmarks", third round, fourth session):
    # written once per batch in which any of its parts changed, where a row per part cost ~12 statements per call.
    # live_calls' rows (a controller upgraded while calls were live) are read once more, then moved here.
    """
    CREATE TABLE live_call_pictures (
        call_id TEXT PRIMARY KEY,
        parts TEXT NOT NULL,                -- JSON: part name -> its data, owned by the part's capability
        updated_at REAL NOT NULL
    );
    """,
    # 21: a queue's recent talk and ring durations one row each (README "Benchmarks", third round, fourth session):
    # a duration added is a small row, where acd_saved_queues' ~25 kB row was rewritten for each; the forgotten
    # ones are deleted in bulk (`estimates.Durations`). acd_saved_queues' rows are read once more, then moved here.
    """
    CREATE TABLE acd_queue_durations (
        queue TEXT NOT NULL,
        kind TEXT NOT NULL,                 -- talk | ring (offer to answer)
        ended_at REAL NOT NULL,
        seconds REAL NOT NULL
    );
    """,
    # 22: no index on every CTI event's time (README "Benchmarks", third round, fifth session): ~15 events a call, each
    # commit rewrote the index's last page (~4.3 of a full-path call's ~49 WAL pages). What read by it reads by `seq`,
    # which grows with the time (retention walks the oldest first; the compat replay looks its first event up); the
    # alerts, read by time (reports, the supervisor's list), have an index of their own, which no other event enters.
    """
    DROP INDEX IF EXISTS cti_events_at;
    CREATE INDEX cti_events_alerts ON cti_events(at) WHERE type = 'alert.raised';
    """,
]

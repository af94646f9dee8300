-- ledger.db as egressd wrote it before numbered migrations. IF NOT EXISTS: a
-- file from then has the tables already (see ledger1 for the columns and
-- indexes older files lack, and for ledger_batch_members, which needs the
-- batch column they lack).
--
-- The ledger and monthly tables follow Storacha's egress-traffic-events and
-- egress-traffic-monthly tables, keyed for this service's questions: the
-- ledger by cause (the dedup key), the totals by customer, month and space.
-- The batches table holds what the worker sends the sink, one row per charge.
CREATE TABLE IF NOT EXISTS ledger (
	cause       TEXT PRIMARY KEY,  -- the invocation CID: one row per billable event, ever
	space       TEXT NOT NULL,
	customer    TEXT NOT NULL,
	resource    TEXT NOT NULL,
	bytes       INTEGER NOT NULL,
	served_at   INTEGER NOT NULL,  -- unix ms
	month       TEXT NOT NULL,     -- YYYY-MM of served_at, UTC
	state       TEXT NOT NULL,     -- always the state of its batch
	reason      TEXT NOT NULL DEFAULT '',
	recorded_at INTEGER NOT NULL,  -- unix ms
	updated_at  INTEGER NOT NULL,  -- unix ms
	batch       TEXT NOT NULL DEFAULT ''  -- batches.id
);
-- Entries not billed (yet), for redrive and listings by state. Reported
-- ones, nearly all of them, are left out: settling an event then costs one
-- index write instead of two, and the index stays small enough to be
-- cached. Queries for other states name the condition (see Entries).
CREATE INDEX IF NOT EXISTS ledger_unbilled ON ledger (state, customer, cause) WHERE state <> 'reported';
CREATE INDEX IF NOT EXISTS ledger_month ON ledger (month, customer, state);
-- A rowid table: new batches go at its end, where the worker settles them
-- soon after, on pages still cached; only the narrow index on id takes a
-- write at a random place, once. (Keyed by id alone, each settle rewrote a
-- random page holding whole rows.)
CREATE TABLE IF NOT EXISTS batches (
	id          TEXT PRIMARY KEY,  -- the cause of its first member
	customer    TEXT NOT NULL,
	ts          INTEGER NOT NULL,  -- unix ms: the latest served_at of its members
	bytes       INTEGER NOT NULL,
	events      INTEGER NOT NULL,
	resend      INTEGER NOT NULL DEFAULT 0,
	state       TEXT NOT NULL,
	reason      TEXT NOT NULL DEFAULT '',
	recorded_at INTEGER NOT NULL,  -- unix ms
	updated_at  INTEGER NOT NULL,  -- unix ms
	account     TEXT NOT NULL DEFAULT ''  -- the sink account it was last sent to, '' until settled
);
-- id orders batches of one timestamp, so that Batches pages in index order.
CREATE INDEX IF NOT EXISTS batches_customer ON batches (customer, ts, id);
CREATE TABLE IF NOT EXISTS monthly (
	customer TEXT NOT NULL,
	month    TEXT NOT NULL,
	space    TEXT NOT NULL,
	bytes    INTEGER NOT NULL,
	events   INTEGER NOT NULL,
	PRIMARY KEY (customer, month, space)
);

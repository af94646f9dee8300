-- journal.db as egressd wrote it before numbered migrations: the event queue
-- and the receipts in one file, so that one transaction writes both. IF NOT
-- EXISTS: a file from then has the tables already (see journal1 for the
-- files of the version before, queue.db and receipts.db).
CREATE TABLE IF NOT EXISTS queue (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	body       BLOB    NOT NULL,
	visible_at INTEGER NOT NULL, -- unix ms; a receive leases the row by moving this forward
	receives   INTEGER NOT NULL DEFAULT 0,
	enqueued_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_visible ON queue (visible_at, id);
CREATE TABLE IF NOT EXISTS dead_letter (
	id          INTEGER PRIMARY KEY,
	body        BLOB    NOT NULL,
	receives    INTEGER NOT NULL,
	enqueued_at INTEGER NOT NULL,
	dead_at     INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS receipt (
	invocation TEXT PRIMARY KEY, -- the task CID the receipt is for
	receipt    TEXT NOT NULL,    -- the receipt's own CID
	archive    BLOB NOT NULL     -- the receipt, its invocation and proofs, as a CAR
);
CREATE INDEX IF NOT EXISTS receipt_by_cid ON receipt (receipt);

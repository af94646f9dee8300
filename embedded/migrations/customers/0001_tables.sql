-- customers.db as egressd wrote it before numbered migrations. IF NOT EXISTS:
-- a file from then has the tables already (see customers1 for the column
-- older files lack).
CREATE TABLE IF NOT EXISTS consumer (
	consumer     TEXT NOT NULL, -- the space did:key
	provider     TEXT NOT NULL, -- the service DID the space is provisioned under
	customer     TEXT NOT NULL, -- did:mailto:...
	inserted_at  TEXT NOT NULL,
	updated_at   TEXT NOT NULL,
	PRIMARY KEY (consumer, provider)
);
CREATE TABLE IF NOT EXISTS customer (
	customer    TEXT PRIMARY KEY,
	account     TEXT NOT NULL DEFAULT '', -- stripe:cus_..., empty for free-tier customers
	inserted_at TEXT NOT NULL,
	updated_at  TEXT NOT NULL,
	product     TEXT NOT NULL DEFAULT ''  -- did:web:..., empty only in files from before it was kept
);

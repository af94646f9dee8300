-- customers.db as egressd 40ef33c (before numbered migrations) wrote it: sqlite3 customers.db .dump
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE consumer (
	consumer     TEXT NOT NULL, -- the space did:key
	provider     TEXT NOT NULL, -- the service DID the space is provisioned under
	customer     TEXT NOT NULL, -- did:mailto:...
	inserted_at  TEXT NOT NULL,
	updated_at   TEXT NOT NULL,
	PRIMARY KEY (consumer, provider)
);
INSERT INTO consumer VALUES('did:key:z6MkAliceSpace','did:web:egressd.example','did:mailto:example.com:alice','2026-12-02T09:53:37.353569061Z','2026-12-02T09:53:37.353569061Z');
INSERT INTO consumer VALUES('did:key:z6MkBobSpace','did:web:egressd.example','did:mailto:example.com:bob','2026-12-02T09:53:37.355675602Z','2026-12-02T09:53:37.355675602Z');
INSERT INTO consumer VALUES('did:key:z6MkCarolSpace','did:web:egressd.example','did:mailto:example.com:carol','2026-12-02T09:53:37.356046282Z','2026-12-02T09:53:37.356046282Z');
CREATE TABLE customer (
	customer    TEXT PRIMARY KEY,
	account     TEXT NOT NULL DEFAULT '', -- stripe:cus_..., empty for free-tier customers
	inserted_at TEXT NOT NULL,
	updated_at  TEXT NOT NULL,
	product     TEXT NOT NULL DEFAULT ''  -- did:web:..., empty only in files from before it was kept
);
INSERT INTO customer VALUES('did:mailto:example.com:alice','stripe:cus_Alice','2026-12-02T09:53:37.353569061Z','2026-12-02T09:53:37.354174735Z','did:web:free.storacha.network');
INSERT INTO customer VALUES('did:mailto:example.com:bob','stripe:cus_Bob','2026-12-02T09:53:37.355015724Z','2026-12-02T09:53:37.355015724Z','did:web:lite.storacha.network');
INSERT INTO customer VALUES('did:mailto:example.com:carol','','2026-12-02T09:53:37.356046282Z','2026-12-02T09:53:37.356046282Z','did:web:starter.storacha.network');
COMMIT;

-- ledger.db as egressd 40ef33c (before numbered migrations) wrote it: sqlite3 ledger.db .dump
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE ledger (
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
INSERT INTO ledger VALUES('bafy-big2','did:key:z6MkBobBig','did:mailto:example.com:bob','bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy',11,1740909900000,'2025-03','failed','monthly total would overflow: the 2025-03 total of space did:key:z6MkBobBig holds 9223372036854775797 bytes, and 11 more would pass 9223372036854775807',1796205217402,1796205217402,'bafy-big2');
INSERT INTO ledger VALUES('bafy-a1','did:key:z6MkAliceSpace','did:mailto:example.com:alice','bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy',100,1740909600000,'2025-03','reported','',1796205217402,1796205217403,'bafy-a1');
INSERT INTO ledger VALUES('bafy-a2','did:key:z6MkAliceSpace','did:mailto:example.com:alice','bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy',200,1740909610000,'2025-03','reported','',1796205217402,1796205217403,'bafy-a1');
INSERT INTO ledger VALUES('bafy-a3','did:key:z6MkAliceSpace','did:mailto:example.com:alice','bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy',300,1740909720000,'2025-03','pending','',1796205217402,1796205217402,'bafy-a3');
INSERT INTO ledger VALUES('bafy-b1','did:key:z6MkBobSpace','did:mailto:example.com:bob','bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy',400,1740909600000,'2025-03','unbillable','no subscription',1796205217402,1796205217404,'bafy-b1');
INSERT INTO ledger VALUES('bafy-b2','did:key:z6MkBobSpace','did:mailto:example.com:bob','bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy',500,1743588000000,'2025-04','rejected','meter_event_customer_not_found: gone',1796205217402,1796205217405,'bafy-b2');
INSERT INTO ledger VALUES('bafy-big1','did:key:z6MkBobBig','did:mailto:example.com:bob','bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy',9223372036854775797,1740909600000,'2025-03','pending','',1796205217402,1796205217402,'bafy-big1');
CREATE TABLE batches (
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
INSERT INTO batches VALUES('bafy-big2','did:mailto:example.com:bob',1740909900000,11,1,0,'failed','monthly total would overflow: the 2025-03 total of space did:key:z6MkBobBig holds 9223372036854775797 bytes, and 11 more would pass 9223372036854775807',1796205217402,1796205217402,'');
INSERT INTO batches VALUES('bafy-a1','did:mailto:example.com:alice',1740909610000,300,2,0,'reported','',1796205217402,1796205217403,'stripe:cus_Alice');
INSERT INTO batches VALUES('bafy-a3','did:mailto:example.com:alice',1740909720000,300,1,0,'pending','',1796205217402,1796205217402,'');
INSERT INTO batches VALUES('bafy-b1','did:mailto:example.com:bob',1740909600000,400,1,2,'unbillable','no subscription',1796205217402,1796205217404,'stripe:cus_Bob');
INSERT INTO batches VALUES('bafy-b2','did:mailto:example.com:bob',1743588000000,500,1,1,'rejected','meter_event_customer_not_found: gone',1796205217402,1796205217405,'');
INSERT INTO batches VALUES('bafy-big1','did:mailto:example.com:bob',1740909600000,9223372036854775797,1,0,'pending','',1796205217402,1796205217402,'');
CREATE TABLE monthly (
	customer TEXT NOT NULL,
	month    TEXT NOT NULL,
	space    TEXT NOT NULL,
	bytes    INTEGER NOT NULL,
	events   INTEGER NOT NULL,
	PRIMARY KEY (customer, month, space)
);
INSERT INTO monthly VALUES('did:mailto:example.com:alice','2025-03','did:key:z6MkAliceSpace',600,3);
INSERT INTO monthly VALUES('did:mailto:example.com:bob','2025-03','did:key:z6MkBobSpace',400,1);
INSERT INTO monthly VALUES('did:mailto:example.com:bob','2025-04','did:key:z6MkBobSpace',500,1);
INSERT INTO monthly VALUES('did:mailto:example.com:bob','2025-03','did:key:z6MkBobBig',9223372036854775797,2);
CREATE INDEX ledger_unbilled ON ledger (state, customer, cause) WHERE state <> 'reported';
CREATE INDEX ledger_month ON ledger (month, customer, state);
CREATE INDEX batches_customer ON batches (customer, ts, id);
CREATE INDEX ledger_batch_members ON ledger (batch) WHERE batch <> cause;
COMMIT;

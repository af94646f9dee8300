-- revocations.db as egressd 40ef33c (before numbered migrations) wrote it: sqlite3 revocations.db .dump
PRAGMA foreign_keys=OFF;
BEGIN TRANSACTION;
CREATE TABLE revocation (
	revoke      TEXT NOT NULL, -- CID of the revoked delegation
	scope       TEXT NOT NULL, -- DID of the principal that revoked it
	cause       TEXT NOT NULL, -- CID of the ucan/revoke invocation
	inserted_at TEXT NOT NULL,
	PRIMARY KEY (revoke, scope)
) WITHOUT ROWID;
INSERT INTO revocation VALUES('bafyreidelegation','did:key:z6MkAliceAgent','bafyreirevokeinvocation','2026-12-02T09:53:37.411191891Z');
COMMIT;

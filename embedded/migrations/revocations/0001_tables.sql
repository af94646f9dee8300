-- revocations.db as egressd wrote it before numbered migrations. IF NOT
-- EXISTS: a file from then has the table already.
CREATE TABLE IF NOT EXISTS revocation (
	revoke      TEXT NOT NULL, -- CID of the revoked delegation
	scope       TEXT NOT NULL, -- DID of the principal that revoked it
	cause       TEXT NOT NULL, -- CID of the ucan/revoke invocation
	inserted_at TEXT NOT NULL,
	PRIMARY KEY (revoke, scope)
) WITHOUT ROWID;

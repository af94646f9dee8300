package embedded

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
)

// The files of the data directory, each with its numbered migrations. Step 1
// of each is a Go function, not only its SQL file, because it adopts files
// of every earlier egressd, and some of those lack columns that
// CREATE TABLE IF NOT EXISTS cannot add: only code that looks at the file can
// tell what is missing. Later steps are plain SQL (sqlStep) unless they too
// need to look first.
var (
	customersFile = file{name: "customers.db", steps: []step{
		{name: "customers/0001_tables.sql", run: customers1},
	}}
	ledgerFile = file{name: "ledger.db", steps: []step{
		{name: "ledger/0001_tables.sql", run: ledger1},
		sqlStep("ledger/0002_daily_totals.sql"),
	}}
	revocationsFile = file{name: "revocations.db", steps: []step{
		sqlStep("revocations/0001_tables.sql"),
	}}
	journalFile = file{name: "journal.db", steps: []step{
		{name: "journal/0001_tables.sql", run: journal1, committed: moveImported},
	}}
)

// files lists them all, for tests that look at every file.
var files = []file{customersFile, ledgerFile, revocationsFile, journalFile}

// customers1 adopts customers.db, giving a file from before products were
// kept its product column (empty: SetCustomer fills it in).
func customers1(ctx context.Context, tx *sql.Tx, _ string) error {
	if err := execFile(ctx, tx, "customers/0001_tables.sql"); err != nil {
		return err
	}
	return addColumn(ctx, tx, "customer", "product", `TEXT NOT NULL DEFAULT ''`)
}

// ledger1 adopts ledger.db, adding what the files of older egressd lack:
// batches' account (empty: which account those batches went to was not
// kept), and ledger's batch, making each entry a batch of one, the batch's
// ID its cause, with the entry's state, reason and resend (the column that
// held resends before batches did); and it drops the index ledger_unbilled
// replaces.
func ledger1(ctx context.Context, tx *sql.Tx, _ string) error {
	if err := execFile(ctx, tx, "ledger/0001_tables.sql"); err != nil {
		return err
	}
	// First, so that batches has every column the copy below fills.
	if err := addColumn(ctx, tx, "batches", "account", `TEXT NOT NULL DEFAULT ''`); err != nil {
		return err
	}
	hasBatch, err := hasColumn(ctx, tx, "ledger", "batch")
	if err != nil {
		return err
	}
	if !hasBatch {
		resend := "0" // a ledger from before resends
		if ok, err := hasColumn(ctx, tx, "ledger", "resend"); err != nil {
			return err
		} else if ok {
			resend = "resend"
		}
		for _, stmt := range []string{
			`ALTER TABLE ledger ADD COLUMN batch TEXT NOT NULL DEFAULT ''`,
			`UPDATE ledger SET batch = cause`,
			`INSERT INTO batches (id, customer, ts, bytes, events, resend, state, reason, recorded_at, updated_at, account)
				SELECT cause, customer, served_at, bytes, 1, ` + resend + `, state, reason, recorded_at, updated_at, '' FROM ledger
				WHERE true ON CONFLICT (id) DO NOTHING`, // WHERE: SQLite's parser needs it before ON CONFLICT
		} {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("moving the ledger to batches: %w", err)
			}
		}
	}
	// Only members other than the first: the first is found by its cause,
	// which is the batch's ID, so a batch of one (every batch, without a
	// window) costs no entry here, and inserting it one random-key index
	// fewer (a third of Record's time). Here, not in the SQL file, because
	// it needs the batch column added above.
	if _, err := tx.ExecContext(ctx, `CREATE INDEX IF NOT EXISTS ledger_batch_members ON ledger (batch) WHERE batch <> cause`); err != nil {
		return fmt.Errorf("indexing the ledger by batch: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DROP INDEX IF EXISTS ledger_state`); err != nil {
		return fmt.Errorf("dropping the ledger's old state index: %w", err)
	}
	return nil
}

// journal1 adopts journal.db, and copies into it the rows of the files that
// held the queue and the receipts before they shared one (see legacy.go).
func journal1(ctx context.Context, tx *sql.Tx, dataDir string) error {
	if err := execFile(ctx, tx, "journal/0001_tables.sql"); err != nil {
		return err
	}
	if err := importFile(ctx, tx, filepath.Join(dataDir, legacyQueueFile), copyQueue); err != nil {
		return err
	}
	return importFile(ctx, tx, filepath.Join(dataDir, legacyReceiptsFile), copyReceipts)
}

func hasColumn(ctx context.Context, tx *sql.Tx, table, column string) (bool, error) {
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM pragma_table_info(?) WHERE name = ?`, table, column).Scan(&n); err != nil {
		return false, fmt.Errorf("reading the columns of %s: %w", table, err)
	}
	return n > 0, nil
}

// addColumn adds the column to table unless it has it.
func addColumn(ctx context.Context, tx *sql.Tx, table, column, decl string) error {
	ok, err := hasColumn(ctx, tx, table, column)
	if err != nil || ok {
		return err
	}
	if _, err := tx.ExecContext(ctx, `ALTER TABLE `+table+` ADD COLUMN `+column+` `+decl); err != nil {
		return fmt.Errorf("adding the column %s to %s: %w", column, table, err)
	}
	return nil
}

package dynamotables

import "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

// LedgerStateIndex is the ledger table's index by state (see Ledger).
const LedgerStateIndex = "state"

// Key attributes of the ledger table and of its state index.
const (
	LedgerPK        = "pk"
	LedgerSK        = "sk"
	LedgerStateKey  = "stateKey"
	LedgerStateSort = "stateSort"
)

// Ledger is egressd's own table, the billing ledger (billing/dynamodb):
// keyed pk, sk, with the index state (stateKey, stateSort; every attribute
// projected) to list entries by state. It is egressd's because Storacha's
// stack has no place for billing state, and a table of its own is the only
// way to keep it without changing one of Storacha's.
func Ledger() Table {
	return Table{
		Key: Key{Hash: str(LedgerPK), Range: str(LedgerSK)},
		Indexes: []Index{{
			Name:       LedgerStateIndex,
			Key:        Key{Hash: str(LedgerStateKey), Range: str(LedgerStateSort)},
			Projection: types.ProjectionTypeAll,
		}},
		BillingMode:         types.BillingModePayPerRequest,
		PointInTimeRecovery: true,
	}
}

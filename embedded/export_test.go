package embedded

// Latest is the version Open brings the file name (e.g. "ledger.db") to, so
// that the tests need no change when a migration is added.
func Latest(name string) int {
	for _, f := range files {
		if f.name == name {
			return len(f.steps)
		}
	}
	return -1
}

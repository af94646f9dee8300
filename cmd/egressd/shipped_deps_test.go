package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// testOnlyImports are packages made for tests: linked into the binary they
// add test helpers (and, for testing, its flags' code) that nothing shipped
// should run.
var testOnlyImports = []string{"testing", "net/http/httptest"}

// thirdPartyTestingImporters are the packages outside this module through
// which testing still reaches the binary, each by a file that is not a
// _test.go file. They are not ours to change; bumping the dependency that
// pulls them in removes them, and then this list must shrink (the test says
// so), so it cannot hide a new importer.
var thirdPartyTestingImporters = map[string]string{
	// fuzz.go; reached through prometheus/client_golang -> prometheus/common/expfmt.
	"github.com/pandatix/go-abnf": "testing",
	// testing.go of v1; reached through go-ucanto -> go-car -> go-merkledag ->
	// go-blockservice -> go-ipfs-blockstore.
	"github.com/hashicorp/golang-lru": "testing",
}

// TestShippedBinaryLinksNothingFromTests keeps test-only packages out of
// egressd: egressd bench --worker runs the fake Stripe, so the fake must live
// in fakestripe, not in stripetest, which imports testing for New(t).
func TestShippedBinaryLinksNothingFromTests(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps",
		"-f", "{{.ImportPath}}{{range .Imports}} {{.}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	seen := make(map[string]bool)
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, " ")
		for _, imp := range strings.Fields(imports) {
			if !slices.Contains(testOnlyImports, imp) {
				continue
			}
			if thirdPartyTestingImporters[pkg] == imp {
				seen[pkg] = true
				continue
			}
			t.Errorf("egressd links %s through %s; move what the binary needs into a package that does not import it", imp, pkg)
		}
	}
	for pkg := range thirdPartyTestingImporters {
		if !seen[pkg] {
			t.Errorf("%s no longer links testing into egressd: remove it from thirdPartyTestingImporters", pkg)
		}
	}
}

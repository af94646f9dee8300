package stripetest_test

import (
	"net/http"
	"testing"

	"github.com/egressd/egressd/billing/stripe/stripetest"
)

// New's fake serves while the test runs and is closed when it ends, so that
// the many tests that call New leave no server behind.
func TestNewClosesWhenTheTestEnds(t *testing.T) {
	var url string
	t.Run("test", func(t *testing.T) {
		url = stripetest.New(t).URL
		res, err := http.Get(url + "/v1/billing/meters")
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusUnauthorized {
			t.Errorf("unauthenticated request: status %d, want 401", res.StatusCode)
		}
	})
	if res, err := http.Get(url + "/v1/billing/meters"); err == nil {
		res.Body.Close()
		t.Error("the fake still answers after its test ended")
	}
}

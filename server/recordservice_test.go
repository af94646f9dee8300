package server_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/egressd/egressd/billing"
	"github.com/egressd/egressd/capabilities"
	"github.com/egressd/egressd/customers"
	"github.com/egressd/egressd/server"
)

// fakeCustomers answers from a map, or fails with err, and remembers the
// providers it was asked about.
type fakeCustomers struct {
	bySpace   map[string]string
	err       error
	providers []string
}

func (f *fakeCustomers) Customer(ctx context.Context, space string, providers []string) (string, error) {
	f.providers = providers
	if f.err != nil {
		return "", f.err
	}
	c, ok := f.bySpace[space]
	if !ok {
		return "", customers.ErrNotFound
	}
	return c, nil
}

// TestRecordService runs the record logic alone, with a fixed clock and a
// fake customer store: what it answers, and the event it leaves.
func TestRecordService(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	svc := &server.RecordService{MaxBytesPerEvent: 1000, MaxAge: time.Hour, MaxAhead: time.Minute,
		Now: func() time.Time { return now }, Providers: []string{"did:web:egress.example", "did:key:alias"}}
	space := newKey(t).DID().String()
	resource := resourceLink(t, "r")
	cause := resourceLink(t, "cause")
	down := errors.New("customer store down")

	for _, c := range []struct {
		name     string
		bytes    int64
		servedAt time.Time
		store    *fakeCustomers
		failure  string
		err      error
	}{
		{"ok", 100, now.Add(-time.Minute), &fakeCustomers{bySpace: map[string]string{space: "alice"}}, "", nil},
		{"too many bytes", 1001, now, &fakeCustomers{bySpace: map[string]string{space: "alice"}}, "BytesOutOfRange", nil},
		{"too old", 100, now.Add(-2 * time.Hour), &fakeCustomers{bySpace: map[string]string{space: "alice"}}, capabilities.ServedAtOutOfRangeName, nil},
		{"too far ahead", 100, now.Add(2 * time.Minute), &fakeCustomers{bySpace: map[string]string{space: "alice"}}, capabilities.ServedAtOutOfRangeName, nil},
		{"no customer", 100, now, &fakeCustomers{}, capabilities.ConsumerNotFoundName, nil},
		{"store down", 100, now, &fakeCustomers{err: down}, "", down},
	} {
		t.Run(c.name, func(t *testing.T) {
			nb := capabilities.RecordCaveats{Resource: resource, Bytes: c.bytes, ServedAt: c.servedAt.UnixMilli()}
			res, err := svc.Handle(context.Background(), server.Request[capabilities.RecordCaveats]{
				Capability: capabilities.EgressRecordCapability.New(space, nb),
				Audience:   "did:key:alias",
				Identity:   cause,
				Customers:  c.store,
			})
			if c.err != nil {
				if !errors.Is(err, c.err) {
					t.Fatalf("error %v, want %v", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.failure != "" {
				if res.Failure == nil || res.Failure.Name() != c.failure || len(res.Events) != 0 {
					t.Fatalf("result %+v, want failure %s and no event", res, c.failure)
				}
				return
			}
			if res.Failure != nil {
				t.Fatalf("failure %v", res.Failure)
			}
			want := billing.Event{Space: space, Customer: "alice", Resource: resource.String(), Bytes: 100,
				ServedAt: c.servedAt.Truncate(time.Millisecond), Cause: cause.String()}
			if len(res.Events) != 1 || res.Events[0] != want {
				t.Errorf("events %+v, want [%+v]", res.Events, want)
			}
			if ok, isRecord := res.OK.(capabilities.RecordOK); !isRecord || ok.Space != space || ok.Cause != cause {
				t.Errorf("success %+v, want a RecordOK for %s caused by %s", res.OK, space, cause)
			}
			// The addressed DID first, then the service's.
			if want := []string{"did:key:alias", "did:web:egress.example", "did:key:alias"}; !slices.Equal(c.store.providers, want) {
				t.Errorf("providers %v, want %v", c.store.providers, want)
			}
		})
	}
}

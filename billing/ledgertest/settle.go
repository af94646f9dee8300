package ledgertest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/egressd/egressd/billing"
)

// RunRepair checks that settling or rejecting a batch again brings members
// that disagree with it back into line, as a settle interrupted half way
// (the batch written, some members not) leaves them. desync sets the stored
// state and reason of the entry of cause behind the ledger's back; it is the
// one thing the interface cannot do, so each backend supplies it.
func RunRepair(t *testing.T, open func(t *testing.T) billing.Ledger, desync func(t *testing.T, l billing.Ledger, cause string, state billing.State, reason string)) {
	ctx := context.Background()
	l := open(t)
	_, bs := record(t, l, minute,
		event("rp1", "did:mailto:a", "did:key:s1", 1, tenAM),
		event("rp2", "did:mailto:a", "did:key:s1", 2, tenAM),
		event("rp3", "did:mailto:a", "did:key:s1", 3, tenAM))
	b := only1(t, bs)
	settle(t, l, b, billing.Reported, "")

	// The batch says reported, one member still says pending.
	desync(t, l, "rp2", billing.Pending, "")
	settle(t, l, b, billing.Reported, "")
	checkMembers(t, l, b.ID, billing.Reported, "", "rp1", "rp2", "rp3")

	// Rejecting it makes every member rejected, whatever each said.
	desync(t, l, "rp3", billing.Failed, "half-way")
	if err := l.Reject(ctx, b.ID, 1, "meter_event_customer_not_found"); err != nil {
		t.Fatal(err)
	}
	checkMembers(t, l, b.ID, billing.Rejected, "meter_event_customer_not_found", "rp1", "rp2", "rp3")

	// Rejecting again repairs too.
	desync(t, l, "rp2", billing.Pending, "")
	if err := l.Reject(ctx, b.ID, 1, "meter_event_customer_not_found"); err != nil {
		t.Fatal(err)
	}
	checkMembers(t, l, b.ID, billing.Rejected, "meter_event_customer_not_found", "rp1", "rp2", "rp3")
}

// testSettle moves batches through the states the worker gives them:
// members follow their batch, a reported batch is final, and settling a
// batch to the state it has is harmless.
func testSettle(t *testing.T, l billing.Ledger) {
	ctx := context.Background()
	_, bs := record(t, l, minute,
		event("st-1", "did:mailto:a", "did:key:s1", 1, tenAM),
		event("st-2", "did:mailto:a", "did:key:s1", 2, tenAM),
		event("st-3", "did:mailto:b", "did:key:s1", 3, tenAM))
	if len(bs) != 2 {
		t.Fatalf("batches = %+v, want 2", bs)
	}
	a, b := bs[0], bs[1]

	settle(t, l, a, billing.Unbillable, billing.ReasonNoAccount)
	checkMembers(t, l, a.ID, billing.Unbillable, billing.ReasonNoAccount, "st-1", "st-2")
	checkMembers(t, l, b.ID, billing.Pending, "", "st-3")

	// A redrive settles the batch it read back from the ledger.
	stored := getBatch(t, l, a.ID)
	if err := l.Settle(ctx, billing.Settlement{Batch: stored, State: billing.Reported},
		billing.Settlement{Batch: b, State: billing.Failed, Reason: "gave up"}); err != nil {
		t.Fatal(err)
	}
	checkMembers(t, l, a.ID, billing.Reported, "", "st-1", "st-2")
	checkMembers(t, l, b.ID, billing.Failed, "gave up", "st-3")

	// Reported is final: a late failure from a duplicate changes nothing.
	for _, st := range []billing.State{billing.Failed, billing.Unbillable, billing.Pending, billing.Reported} {
		settle(t, l, a, st, "late")
	}
	checkMembers(t, l, a.ID, billing.Reported, "", "st-1", "st-2")
	// Settling a failed batch to failed again only updates the reason.
	settle(t, l, b, billing.Failed, "gave up again")
	checkMembers(t, l, b.ID, billing.Failed, "gave up again", "st-3")

	if err := l.Settle(ctx, billing.Settlement{Batch: billing.Batch{ID: "nope"}, State: billing.Reported}); !errors.Is(err, billing.ErrNotFound) {
		t.Fatalf("Settle of an unknown batch = %v, want ErrNotFound", err)
	}
	if err := l.Settle(ctx, billing.Settlement{Batch: b, State: billing.State("lost")}); err == nil {
		t.Fatal("Settle accepted an unknown state")
	}
	checkMembers(t, l, b.ID, billing.Failed, "gave up again", "st-3")
	checkCounts(t, l, billing.UsageFilter{Month: "2025-01"}, map[billing.State]int64{billing.Reported: 2, billing.Failed: 1})
}

// testSettleResend settles under resends: a higher one is stored with the
// state, a lower one is ignored, whatever the state it brings.
func testSettleResend(t *testing.T, l billing.Ledger) {
	_, bs := record(t, l, single, event("sr", "did:mailto:a", "did:key:s1", 1, tenAM))
	b := bs[0]
	b.Resend = 2
	settle(t, l, b, billing.Failed, "sink down")
	if got := getBatch(t, l, b.ID); got.Resend != 2 || got.State != billing.Failed {
		t.Fatalf("after settling under resend 2: %+v", got)
	}
	older := b
	older.Resend = 1
	settle(t, l, older, billing.Reported, "")
	if got := getBatch(t, l, b.ID); got.Resend != 2 || got.State != billing.Failed || got.Reason != "sink down" {
		t.Fatalf("a settle under a lower resend moved the batch: %+v", got)
	}
	checkMembers(t, l, b.ID, billing.Failed, "sink down", "sr")
	settle(t, l, b, billing.Reported, "")
	checkMembers(t, l, b.ID, billing.Reported, "", "sr")
}

// testSettleAccount follows the account a batch was billed to, which
// reconciling compares it with: a settlement that names one stores it, one
// that names none (the batch never reached the sink this time) keeps the
// stored one, a rejection keeps it, a redrive to another account replaces
// it, and a settlement too late to apply changes it no more than the
// state. Batch and Batches both return it.
func testSettleAccount(t *testing.T, l billing.Ledger) {
	ctx := context.Background()
	_, bs := record(t, l, minute,
		event("ac1", "did:mailto:a", "did:key:s1", 1, tenAM),
		event("ac2", "did:mailto:a", "did:key:s1", 2, tenAM),
		event("ac3", "did:mailto:a", "did:key:s1", 4, tenAM.Add(time.Minute)))
	if len(bs) != 2 {
		t.Fatalf("batches = %+v, want 2", bs)
	}
	b, other := bs[0], bs[1]
	if b.Account != "" {
		t.Fatalf("a batch just recorded has account %q, want none", b.Account)
	}
	check := func(want billing.Batch) {
		t.Helper()
		checkBatch(t, getBatch(t, l, want.ID), want)
		var listed []billing.Batch
		err := l.Batches(ctx, billing.BatchFilter{Customer: "did:mailto:a", From: tenAM, To: tenAM.Add(time.Hour)}, func(got billing.Batch) error {
			if got.ID == want.ID {
				listed = append(listed, got)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("Batches: %v", err)
		}
		if len(listed) != 1 {
			t.Fatalf("Batches listed %s %d times, want once", want.ID, len(listed))
		}
		checkBatch(t, listed[0], want)
	}
	want := billing.Batch{ID: "ac1", Customer: "did:mailto:a", Timestamp: tenAM, Bytes: 3, Events: 2, State: billing.Pending}
	check(want)

	// Sent to cus_1, which failed: the account is stored with the failure.
	sent := b
	sent.Account = "stripe:cus_1"
	settle(t, l, sent, billing.Failed, "sink down")
	want.Account, want.State, want.Reason = "stripe:cus_1", billing.Failed, "sink down"
	check(want)
	checkMembers(t, l, b.ID, billing.Failed, "sink down", "ac1", "ac2")

	// A settlement without an account keeps it.
	settle(t, l, b, billing.Reported, "")
	want.State, want.Reason = billing.Reported, ""
	check(want)

	// Too late to apply: a reported batch keeps its account as its state.
	late := b
	late.Account = "stripe:cus_late"
	settle(t, l, late, billing.Failed, "late")
	check(want)

	// The sink rejects it: the account it was billed to stays.
	if err := l.Reject(ctx, b.ID, 0, "meter_event_customer_not_found"); err != nil {
		t.Fatalf("Reject: %v", err)
	}
	want.State, want.Reason = billing.Rejected, "meter_event_customer_not_found"
	check(want)

	// A redrive sends it to the customer's new account: that is stored.
	resent := getBatch(t, l, b.ID)
	resent.Resend++
	resent.Account = "stripe:cus_2"
	settle(t, l, resent, billing.Reported, "")
	want.Resend, want.Account, want.State, want.Reason = 1, "stripe:cus_2", billing.Reported, ""
	check(want)
	checkMembers(t, l, b.ID, billing.Reported, "", "ac1", "ac2")

	// Accounts are each batch's own; settling several at once stores each.
	other.Account = "stripe:cus_3"
	if err := l.Settle(ctx, billing.Settlement{Batch: other, State: billing.Reported}, billing.Settlement{Batch: resent, State: billing.Reported}); err != nil {
		t.Fatal(err)
	}
	check(billing.Batch{ID: "ac3", Customer: "did:mailto:a", Timestamp: tenAM.Add(time.Minute), Bytes: 4, Events: 1, State: billing.Reported, Account: "stripe:cus_3"})
	check(want)
}

// testReject follows a batch the sink accepted, then rejected in an
// asynchronous error report: the reported batch and its members become
// rejected with the reason, a second rejection (the same report delivered
// twice) changes nothing else, a slow duplicate's success cannot undo it,
// and counts and listings show it. Then a redrive sends it again under
// resend 1: that moves it, a late report on resend 0 does not, a report on
// resend 1 does.
func testReject(t *testing.T, l billing.Ledger) {
	ctx := context.Background()
	_, bs := record(t, l, minute,
		event("rj1", "did:mailto:a", "did:key:s1", 7, tenAM),
		event("rj2", "did:mailto:a", "did:key:s1", 3, tenAM),
		event("rj3", "did:mailto:b", "did:key:s1", 1, tenAM))
	b, other := bs[0], bs[1]
	settle(t, l, b, billing.Reported, "")
	const reason = "meter_event_customer_not_found: No customer with id cus_x"
	for range 2 {
		if err := l.Reject(ctx, b.ID, 0, reason); err != nil {
			t.Fatalf("Reject: %v", err)
		}
	}
	for _, st := range []billing.State{billing.Reported, billing.Failed, billing.Unbillable} {
		settle(t, l, b, st, "late")
	}
	checkMembers(t, l, b.ID, billing.Rejected, reason, "rj1", "rj2")
	if got := getBatch(t, l, b.ID); got.Resend != 0 || got.Bytes != 10 {
		t.Fatalf("rejected batch = %+v, want resend 0 and its 10 bytes", got)
	}
	if es := entries(t, l, billing.EntryFilter{States: []billing.State{billing.Rejected}}); !slices.Equal(causes(es), []string{"rj1", "rj2"}) {
		t.Fatalf("rejected entries = %+v", es)
	}
	checkCounts(t, l, billing.UsageFilter{Month: "2025-01"}, map[billing.State]int64{billing.Pending: 1, billing.Rejected: 2})
	// The month's total still holds the bytes: they were served; only the
	// billing of them is in question.
	if u := usage(t, l, "2025-01", "did:mailto:a"); len(u) != 1 || u[0].Bytes != 10 || u[0].Events != 2 {
		t.Errorf("usage = %+v, want 10 bytes in 2 events", u)
	}

	// A redrive sends it again under resend 1, and the sink takes it.
	resent := getBatch(t, l, b.ID)
	resent.Resend++
	settle(t, l, resent, billing.Reported, "")
	checkMembers(t, l, b.ID, billing.Reported, "", "rj1", "rj2")
	// A late report on the identifier it replaced changes nothing.
	if err := l.Reject(ctx, b.ID, 0, "late: resend 0"); err != nil {
		t.Fatal(err)
	}
	if got := getBatch(t, l, b.ID); got.State != billing.Reported || got.Resend != 1 {
		t.Fatalf("a late rejection of resend 0 moved the batch: %+v", got)
	}
	checkMembers(t, l, b.ID, billing.Reported, "", "rj1", "rj2")
	// A report on resend 1 rejects it again; its own duplicate success cannot undo that.
	if err := l.Reject(ctx, b.ID, 1, reason); err != nil {
		t.Fatal(err)
	}
	settle(t, l, resent, billing.Reported, "")
	checkMembers(t, l, b.ID, billing.Rejected, reason, "rj1", "rj2")
	if got := getBatch(t, l, b.ID); got.Resend != 1 {
		t.Fatalf("batch = %+v, want rejected under resend 1", got)
	}

	// Reject applies whatever the state: a pending batch too.
	if err := l.Reject(ctx, other.ID, 0, reason); err != nil {
		t.Fatal(err)
	}
	checkMembers(t, l, other.ID, billing.Rejected, reason, "rj3")

	if err := l.Reject(ctx, "nope", 0, reason); !errors.Is(err, billing.ErrNotFound) {
		t.Fatalf("Reject of an unknown batch = %v, want ErrNotFound", err)
	}
}

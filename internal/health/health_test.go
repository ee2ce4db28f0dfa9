package health

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestTracker(t *testing.T) {
	bad := errors.New("connection refused")
	tests := []struct {
		name    string
		policy  Policy
		results []error
		want    []Decision
	}{
		{"all passing: nothing to do", Policy{FailureThreshold: 3, LocalRestarts: 2}, []error{nil, nil, nil}, []Decision{None, None, None}},
		{"below threshold", Policy{FailureThreshold: 3, LocalRestarts: 2}, []error{bad, bad, nil, bad, bad}, []Decision{None, None, None, None, None}},
		{"restart twice then fail", Policy{FailureThreshold: 2, LocalRestarts: 2},
			[]error{bad, bad, bad, bad, bad, bad, bad, bad},
			[]Decision{None, Restart, None, Restart, None, Failed, None, None}},
		{"no local recovery", Policy{FailureThreshold: 1, LocalRestarts: -1}, []error{bad}, []Decision{Failed}},
		{"a restart that works keeps the site", Policy{FailureThreshold: 1, LocalRestarts: 1}, []error{bad, nil, nil}, []Decision{Restart, None, None}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := &Tracker{Policy: tt.policy}
			now := time.Unix(0, 0)
			var got []Decision
			for _, r := range tt.results {
				now = now.Add(time.Second)
				got = append(got, tr.Record(now, r))
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("decisions (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBudgetComesBack(t *testing.T) {
	tr := &Tracker{Policy: Policy{FailureThreshold: 1, LocalRestarts: 1}}
	now := time.Unix(0, 0)
	if d := tr.Record(now, errors.New("x")); d != Restart {
		t.Fatalf("first failure: %v", d)
	}
	for i := 0; i < recoverAfter; i++ {
		tr.Record(now, nil)
	}
	if d := tr.Record(now, errors.New("x")); d != Restart {
		t.Fatalf("after a long healthy run the budget is back, got %v", d)
	}
}

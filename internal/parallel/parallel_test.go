package parallel

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestEachBoundsAndCompletes(t *testing.T) {
	for _, tc := range []struct{ n, limit int }{{0, 4}, {1, 4}, {10, 1}, {50, 4}} {
		var running, peak, done atomic.Int32
		Each(tc.n, tc.limit, func(int) {
			now := running.Add(1)
			for {
				p := peak.Load()
				if now <= p || peak.CompareAndSwap(p, now) {
					break
				}
			}
			time.Sleep(time.Millisecond)
			running.Add(-1)
			done.Add(1)
		})
		if int(done.Load()) != tc.n {
			t.Errorf("n=%d: %d calls", tc.n, done.Load())
		}
		if int(peak.Load()) > max(tc.limit, 1) {
			t.Errorf("n=%d limit=%d: %d at once", tc.n, tc.limit, peak.Load())
		}
		if tc.n >= 50 && peak.Load() < 2 {
			t.Errorf("n=%d limit=%d: never more than one at once", tc.n, tc.limit)
		}
	}
}

func TestFirstErrorIsTheLowest(t *testing.T) {
	var calls atomic.Int32
	err := FirstError(8, 3, func(i int) error {
		calls.Add(1)
		if i == 2 || i == 6 {
			return errors.New(string(rune('0' + i)))
		}
		return nil
	})
	if err == nil || err.Error() != "2" || calls.Load() != 8 {
		t.Fatalf("err %v after %d calls; want 2 after 8", err, calls.Load())
	}
}

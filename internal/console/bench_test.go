package console

import (
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/go-logr/logr"

	"github.com/sitekeeper/sitekeeper/internal/metrics"
)

// BenchmarkScrape is one scrape of /metrics, the cluster state read from
// the live view (kept fresh from the store's watch, not read per scrape).
// Target: under 50 ms with 1,000 groups.
func BenchmarkScrape(b *testing.B) {
	for _, groups := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("groups=%d", groups), func(b *testing.B) {
			st := startStore(b, groups)
			s := New(Options{Store: st, Metrics: metrics.New(), Anonymous: RoleViewer, Log: logr.Discard()})
			h := s.Handler()
			scrape := func() int {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
				if rec.Code != 200 {
					b.Fatalf("HTTP %d", rec.Code)
				}
				return rec.Body.Len()
			}
			size := scrape() // the view's first read is not what is measured
			b.ResetTimer()
			for b.Loop() {
				scrape()
			}
			b.ReportMetric(float64(size), "bytes/scrape")
		})
	}
}

// BenchmarkViewRead is a whole read of the state the view makes after a
// change (at most every 200 ms, or five times as long as the last read
// took).
func BenchmarkViewRead(b *testing.B) {
	for _, groups := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("groups=%d", groups), func(b *testing.B) {
			st := startStore(b, groups)
			l := newLive(st, nil, logr.Discard())
			for b.Loop() {
				l.build(b.Context(), true)
			}
		})
	}
}

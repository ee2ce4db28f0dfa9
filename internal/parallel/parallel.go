// Package parallel runs independent pieces of one batch side by side,
// a bounded number at a time.
package parallel

import "sync"

// Each calls f(0), ..., f(n-1), at most limit at once, and returns when
// every call has.
func Each(n, limit int, f func(i int)) {
	if n == 1 || limit <= 1 {
		for i := range n {
			f(i)
		}
		return
	}
	var wg sync.WaitGroup
	slots := make(chan struct{}, limit)
	for i := range n {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer func() { <-slots; wg.Done() }()
			f(i)
		}()
	}
	wg.Wait()
}

// FirstError calls f(0), ..., f(n-1) as Each does and returns the error of
// the lowest i that failed. Every call runs either way.
func FirstError(n, limit int, f func(i int) error) error {
	errs := make([]error, n)
	Each(n, limit, func(i int) { errs[i] = f(i) })
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// Package notify tells webhooks what a source did: a JSON POST, signed
// with HMAC SHA-256 when the webhook has a secret, retried with backoff.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
)

// Notice is the body of one webhook call.
type Notice struct {
	// Source is the GitSource's name.
	Source string `json:"source"`
	// Event is applied, refused, degraded or failover.
	Event string `json:"event"`
	// Revision is the revision concerned ("git:<commit>"), when one is.
	Revision string `json:"revision,omitempty"`
	// Object is the object concerned (a failover's group member), when one is.
	Object  string    `json:"object,omitempty"`
	Message string    `json:"message"`
	Node    string    `json:"node,omitempty"`
	Time    time.Time `json:"time"`
}

// SignatureHeader carries "sha256=<hex HMAC of the body>".
const SignatureHeader = "X-Sitekeeper-Signature"

// Attempts is how many times a notice is sent before it is given up.
const Attempts = 5

// Backoff is the wait before the second attempt; it doubles after each.
var Backoff = time.Second

// Send posts n to w, retrying an error or a 5xx/429 answer with doubling
// waits; a 4xx answer (the receiver refuses it) is not retried.
func Send(ctx context.Context, client *http.Client, w v1alpha1.Webhook, n Notice) error {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	body, err := json.Marshal(n)
	if err != nil {
		return err
	}
	var sig string
	if w.SecretFile != "" {
		key, err := os.ReadFile(w.SecretFile)
		if err != nil {
			return fmt.Errorf("read the webhook's secret (secretFile; it must exist on every node): %w", err)
		}
		sig = Sign(bytes.TrimSpace(key), body)
	}
	wait := Backoff
	var last error
	for attempt := 1; attempt <= Attempts; attempt++ {
		retry, err := post(ctx, client, w.URL, body, sig, n.Event)
		if err == nil {
			return nil
		}
		last = fmt.Errorf("attempt %d of %d: %w", attempt, Attempts, err)
		if !retry || attempt == Attempts {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (then: %v)", last, ctx.Err())
		case <-time.After(wait):
		}
		wait *= 2
	}
	return last
}

func post(ctx context.Context, client *http.Client, url string, body []byte, sig, event string) (retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return false, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "sitekeeper")
	req.Header.Set("X-Sitekeeper-Event", event)
	if sig != "" {
		req.Header.Set(SignatureHeader, sig)
	}
	resp, err := client.Do(req)
	if err != nil {
		return true, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch {
	case resp.StatusCode < 300:
		return false, nil
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return true, fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return false, fmt.Errorf("%s answered %s (not retried)", url, resp.Status)
}

// Sign is the signature header's value for body under key.
func Sign(key, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether header is body's signature under key, as a
// receiver checks it.
func Verify(key, body []byte, header string) bool {
	want := Sign(key, body)
	return hmac.Equal([]byte(want), []byte(strings.TrimSpace(header)))
}

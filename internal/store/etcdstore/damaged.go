package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/plan"
	"github.com/sitekeeper/sitekeeper/internal/store"
)

// checkers say whether a value decodes as what its key holds, by key
// prefix (below prefix). Families whose values carry no structure
// (suspend/, deleted/: "true") and the election's keys are not checked.
var checkers = []struct {
	under string
	check func(key string, v []byte) error
}{
	{string(store.FamilyObjects), func(key string, v []byte) error {
		o, err := decodeObject(v, 0)
		if err != nil {
			return err
		}
		return objectAtKey(o, key)
	}},
	{string(store.FamilyStatus), decodes[v1alpha1.Status]},
	{string(store.FamilyNodes), decodes[store.NodeInfo]},
	{"lastknown/", decodes[store.NodeInfo]},
	{string(store.FamilyReports), decodes[store.Report]},
	{string(store.FamilyDecisions), func(key string, v []byte) error {
		_, err := decodeDecision(key, v)
		return err
	}},
	{"events/", decodes[store.Event]},
	{string(store.FamilySim), decodes[store.SimCommand]},
	{string(store.FamilySources), decodes[store.Source]},
	{"sourcenodes/", decodes[store.SourceNode]},
	{string(store.FamilyGitSources), decodes[v1alpha1.GitSource]},
	{string(store.FamilyObserved), decodes[plan.Observed]},
}

func decodes[T any](_ string, v []byte) error {
	var t T
	return json.Unmarshal(v, &t)
}

// Damaged scans every key of the store and returns those whose value does
// not decode as what the key holds. The readers skip such keys (with a
// Warning event from the placement leader); this finds them all, for
// `sitekeeper doctor`.
func (s *Store) Damaged(ctx context.Context) ([]store.DamagedKey, error) {
	resp, err := s.client.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("read the store: %w", err)
	}
	var out []store.DamagedKey
	for _, kv := range resp.Kvs {
		key := string(kv.Key)
		rest := strings.TrimPrefix(key, prefix)
		for _, c := range checkers {
			if !strings.HasPrefix(rest, c.under) {
				continue
			}
			if err := c.check(key, kv.Value); err != nil {
				out = append(out, store.DamagedKey{Key: key, Error: err.Error(), Revision: kv.ModRevision})
			}
			break
		}
	}
	return out, nil
}

// RemoveDamaged deletes each key, only if its value is still the damaged
// one (a compare-and-swap on its revision): a key rewritten since the scan
// is kept. It returns the keys removed.
func (s *Store) RemoveDamaged(ctx context.Context, keys []store.DamagedKey) ([]string, error) {
	var removed []string
	var errs []error
	for _, k := range keys {
		if !strings.HasPrefix(k.Key, prefix) {
			errs = append(errs, fmt.Errorf("remove %s: not a Sitekeeper key", k.Key))
			continue
		}
		txn, err := s.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(k.Key), "=", k.Revision)).Then(clientv3.OpDelete(k.Key)).Commit()
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("remove %s: %w", k.Key, err))
		case !txn.Succeeded:
			errs = append(errs, fmt.Errorf("remove %s: it changed since it was read; run doctor again: %w", k.Key, store.ErrConflict))
		default:
			removed = append(removed, k.Key)
			s.Event(ctx, store.Event{Type: store.Normal, Reason: v1alpha1.EventDamagedKeyRemoved, Object: strings.TrimPrefix(k.Key, prefix), Message: "damaged key removed: " + k.Error})
		}
	}
	return removed, errors.Join(errs...)
}

// InjectRaw writes value under key (below the store's prefix) as it is,
// for fault runs that poison the store as a bug or a hand would.
func (s *Store) InjectRaw(ctx context.Context, key, value string) error {
	if _, err := s.client.Put(ctx, prefix+strings.TrimPrefix(key, "/"), value); err != nil {
		return fmt.Errorf("inject %s: %w", key, err)
	}
	return nil
}

package etcdstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/store"
)

// ErrGitSourceChanged is a GitSource write that lost a race: the spec
// changed since it was read. Read it again and retry.
var ErrGitSourceChanged = errors.New("the git source changed since it was read")

// GitSources returns every GitSource spec by name. A value that does not
// decode is left out (doctor lists it).
func (s *Store) GitSources(ctx context.Context) (map[string]v1alpha1.GitSource, error) {
	return getPrefix[v1alpha1.GitSource](ctx, s, family(store.FamilyGitSources))
}

// GitSource returns one GitSource spec and its revision (for PutGitSource's
// compare-and-swap); ok is false when there is none.
func (s *Store) GitSource(ctx context.Context, name string) (gs v1alpha1.GitSource, rev int64, ok bool, err error) {
	resp, err := s.client.Get(ctx, gitSourceKey(name))
	if err != nil || len(resp.Kvs) == 0 {
		return gs, 0, false, err
	}
	if err := json.Unmarshal(resp.Kvs[0].Value, &gs); err != nil {
		return gs, 0, false, fmt.Errorf("decode GitSource %s: %w", name, err)
	}
	return gs, resp.Kvs[0].ModRevision, true, nil
}

// PutGitSource writes gs if its stored revision is still rev (0: only if
// there is none); otherwise ErrGitSourceChanged.
func (s *Store) PutGitSource(ctx context.Context, gs v1alpha1.GitSource, rev int64) error {
	b, err := json.Marshal(gs)
	if err != nil {
		return err
	}
	key := gitSourceKey(gs.Metadata.Name)
	resp, err := s.client.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).Then(clientv3.OpPut(key, string(b))).Commit()
	if err != nil {
		return fmt.Errorf("write GitSource %s: %w", gs.Metadata.Name, err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("write GitSource %s: %w", gs.Metadata.Name, ErrGitSourceChanged)
	}
	s.Event(ctx, store.Event{Type: store.Normal, Reason: v1alpha1.EventSourceConfigured, Object: "source/" + gs.Metadata.Name,
		Message: fmt.Sprintf("GitSource %s written: %s at %s, suspend %t", gs.Metadata.Name, gs.Spec.URL, gs.Spec.Ref, gs.Spec.Suspend)})
	return nil
}

// DeleteGitSource removes a GitSource spec; what it applied stays, owned
// by its name, until deleted or taken over.
func (s *Store) DeleteGitSource(ctx context.Context, name string) (bool, error) {
	resp, err := s.client.Delete(ctx, gitSourceKey(name))
	if err != nil {
		return false, fmt.Errorf("delete GitSource %s: %w", name, err)
	}
	if resp.Deleted > 0 {
		s.Event(ctx, store.Event{Type: store.Normal, Reason: v1alpha1.EventSourceDeleted, Object: "source/" + name, Message: "GitSource " + name + " deleted; what it applied stays"})
	}
	return resp.Deleted > 0, nil
}

// UpdateGitSource reads name's GitSource, lets change edit it (existed
// says whether there was one; change gets a zero value when not) and
// writes it back by compare-and-swap, again from a fresh read when another
// write came between. Without one and with create false, it is
// store.ErrNotFound.
func (s *Store) UpdateGitSource(ctx context.Context, name string, create bool, change func(gs *v1alpha1.GitSource, existed bool) error) (existed bool, err error) {
	for {
		gs, rev, ok, err := s.GitSource(ctx, name)
		if err != nil {
			return false, err
		}
		if !ok && !create {
			return false, fmt.Errorf("git source %q: %w (`sitekeeper source list` lists them)", name, store.ErrNotFound)
		}
		if err := change(&gs, ok); err != nil {
			return ok, err
		}
		err = s.PutGitSource(ctx, gs, rev)
		if !errors.Is(err, ErrGitSourceChanged) {
			return ok, err
		}
	}
}

package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/sitekeeper/sitekeeper/internal/store"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The store's roles. An admin is etcd's root; a node reads and writes the
// cluster's keys; an operator reads them and writes suspensions, decisions,
// events and switchover requests (rolePerms); a viewer reads them.
const (
	roleNode     = "sitekeeper-node"
	roleOperator = "sitekeeper-operator"
	roleViewer   = "sitekeeper-viewer"
)

// rbacRole is the etcd role of a certificate role.
func rbacRole(role string) (string, error) {
	switch role {
	case "admin":
		return "root", nil
	case "node":
		return roleNode, nil
	case "operator":
		return roleOperator, nil
	case "viewer":
		return roleViewer, nil
	}
	return "", fmt.Errorf("unknown role %q", role)
}

// EnsureUsers makes the store's roles and a user (no password: the
// client certificate's name is the user) for each of users (name -> role:
// admin, node, operator or viewer), then turns authentication on, so that
// only those names reach the store and a viewer cannot write. It is
// idempotent; the client must be an admin's (root) once authentication is
// on.
func (s *Store) EnsureUsers(ctx context.Context, users map[string]string) error {
	for _, role := range []string{roleNode, roleOperator, roleViewer} {
		if err := s.ensureRole(ctx, role, rolePerms(role)); err != nil {
			return err
		}
	}
	all := map[string]string{"root": "admin"}
	for name, role := range users {
		all[name] = role
	}
	for name, role := range all {
		etcdRole, err := rbacRole(role)
		if err != nil {
			return fmt.Errorf("user %s: %w", name, err)
		}
		if got, err := s.client.UserGet(ctx, name); err == nil {
			if slices.Contains(got.Roles, etcdRole) {
				continue
			}
		} else if _, err := s.client.UserAddWithOptions(ctx, name, "", &clientv3.UserAddOptions{NoPassword: true}); err != nil && !errors.Is(err, rpctypes.ErrUserAlreadyExist) {
			return fmt.Errorf("add user %s: %w", name, err)
		}
		if _, err := s.client.UserGrantRole(ctx, name, etcdRole); err != nil {
			return fmt.Errorf("grant user %s role %s: %w", name, etcdRole, err)
		}
	}
	st, err := s.client.AuthStatus(ctx)
	if err != nil {
		return err
	}
	if !st.Enabled {
		if _, err := s.client.AuthEnable(ctx); err != nil {
			return fmt.Errorf("turn authentication on: %w", err)
		}
	}
	return nil
}

// perm is one key range a role may read or read and write.
type perm struct {
	key, end string
	typ      clientv3.PermissionType
}

func prefixPerm(p string, typ clientv3.PermissionType) perm {
	return perm{p, clientv3.GetPrefixRangeEnd(p), typ}
}

// rolePerms is what each role may do. A node reads and writes every
// key; a viewer reads them. An operator reads them and writes only what
// its commands need: suspensions, the decisions (clear-failures), events,
// drains and switchover requests, which the placement leader carries out. So an
// operator can move, suspend and resume groups, but not apply or delete
// objects: that takes an admin.
func rolePerms(role string) []perm {
	rw, r := clientv3.PermissionType(clientv3.PermReadWrite), clientv3.PermissionType(clientv3.PermRead)
	switch role {
	case roleNode:
		return []perm{prefixPerm(prefix, rw)}
	case roleOperator:
		return []perm{prefixPerm(prefix, r), prefixPerm(family(store.FamilySuspended), rw), prefixPerm(family(store.FamilyDecisions), rw),
			prefixPerm(eventsPrefix(), rw), prefixPerm(family(store.FamilyRequests), rw), prefixPerm(family(store.FamilyDrains), rw)}
	}
	return []perm{prefixPerm(prefix, r)}
}

// ensureRole makes role hold exactly want. Only what differs is written:
// every change of the auth store makes requests in flight fail once (an
// old auth revision).
func (s *Store) ensureRole(ctx context.Context, role string, want []perm) error {
	got, err := s.client.RoleGet(ctx, role)
	if err != nil {
		if _, err := s.client.RoleAdd(ctx, role); err != nil && !errors.Is(err, rpctypes.ErrRoleAlreadyExist) {
			return fmt.Errorf("add role %s: %w", role, err)
		}
		got = &clientv3.AuthRoleGetResponse{}
	}
	for _, p := range got.Perm {
		have := perm{string(p.Key), string(p.RangeEnd), clientv3.PermissionType(p.PermType)}
		if !slices.Contains(want, have) {
			// An older grant (an operator's write on every key, before
			// operators and admins were told apart).
			if _, err := s.client.RoleRevokePermission(ctx, role, have.key, have.end); err != nil {
				return fmt.Errorf("revoke from role %s: %w", role, err)
			}
		}
	}
	for _, p := range want {
		if hasPerm(got, p.key, p.end, p.typ) {
			continue
		}
		if _, err := s.client.RoleGrantPermission(ctx, role, p.key, p.end, p.typ); err != nil {
			return fmt.Errorf("grant role %s: %w", role, err)
		}
	}
	return nil
}

func hasPerm(r *clientv3.AuthRoleGetResponse, key, end string, perm clientv3.PermissionType) bool {
	for _, p := range r.Perm {
		if string(p.Key) == key && string(p.RangeEnd) == end && clientv3.PermissionType(p.PermType) == perm {
			return true
		}
	}
	return false
}

// IsPermissionDenied reports whether err is the store refusing a request
// the client's role does not allow (a viewer's write).
func IsPermissionDenied(err error) bool {
	return errors.Is(err, rpctypes.ErrPermissionDenied)
}

// PromoteLearners promotes every learner that has caught up with the
// leader, and returns their names. With authentication on, a learner
// cannot promote itself (etcd wants root for membership changes): the
// node holding the CA does it as the admin.
func (s *Store) PromoteLearners(ctx context.Context) ([]string, error) {
	resp, err := s.client.MemberList(ctx)
	if err != nil {
		return nil, err
	}
	var promoted []string
	for _, m := range resp.Members {
		if !m.IsLearner {
			continue
		}
		// One that has not caught up is refused; it is tried again later.
		if _, err := s.client.MemberPromote(ctx, m.ID); err == nil {
			promoted = append(promoted, m.Name)
		}
	}
	return promoted, nil
}

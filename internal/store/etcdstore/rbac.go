package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The store's roles. An admin is etcd's root; a node and an operator read
// and write the cluster's keys; a viewer reads them.
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
	kv := prefix
	end := clientv3.GetPrefixRangeEnd(prefix)
	for role, perm := range map[string]clientv3.PermissionType{roleNode: clientv3.PermissionType(clientv3.PermReadWrite), roleOperator: clientv3.PermissionType(clientv3.PermReadWrite), roleViewer: clientv3.PermissionType(clientv3.PermRead)} {
		// Only what is missing is written: every change of the auth store
		// makes requests in flight fail once (an old auth revision).
		if got, err := s.client.RoleGet(ctx, role); err == nil {
			if hasPerm(got, kv, end, perm) {
				continue
			}
		} else if _, err := s.client.RoleAdd(ctx, role); err != nil && !errors.Is(err, rpctypes.ErrRoleAlreadyExist) {
			return fmt.Errorf("add role %s: %w", role, err)
		}
		if _, err := s.client.RoleGrantPermission(ctx, role, kv, end, perm); err != nil {
			return fmt.Errorf("grant role %s: %w", role, err)
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

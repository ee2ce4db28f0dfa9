package pki

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"

	"github.com/sitekeeper/sitekeeper/internal/atomicfile"
)

// UsersFile lists the names the CA issued certificates to, with their
// roles: the store's users, one per certificate name.
const UsersFile = "users.json"

var usersMu sync.Mutex

// RecordUser adds name with role to dir's users.
func RecordUser(dir, name, role string) error {
	usersMu.Lock()
	defer usersMu.Unlock()
	all, err := readUsers(dir)
	if err != nil {
		return err
	}
	if all[name] == role {
		return nil
	}
	all[name] = role
	b, err := json.MarshalIndent(all, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(dir, UsersFile), b, 0o600)
}

// Users are dir's users: name -> role.
func Users(dir string) (map[string]string, error) {
	usersMu.Lock()
	defer usersMu.Unlock()
	return readUsers(dir)
}

func readUsers(dir string) (map[string]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, UsersFile))
	if errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, err
	}
	all := map[string]string{}
	return all, json.Unmarshal(b, &all)
}

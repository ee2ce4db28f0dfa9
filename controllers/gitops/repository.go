package gitops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/Masterminds/semver/v3"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/go-git/go-git/v5/storage/memory"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/gitrev"
	"github.com/sitekeeper/sitekeeper/internal/manifest"
)

// repository is a source's repository fetched into memory: nothing is
// written on the node, and a leader that starts fetches what the remote
// holds then, never an older copy of its own.
type repository struct {
	url  string
	repo *gogit.Repository
}

func newRepository(url string) (*repository, error) {
	r, err := gogit.Init(memory.NewStorage(), nil)
	if err != nil {
		return nil, err
	}
	if _, err := r.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{url}}); err != nil {
		return nil, fmt.Errorf("remote %s: %w", url, err)
	}
	return &repository{url: url, repo: r}, nil
}

// fetch brings every branch and tag up to date; a branch or tag deleted
// on the remote is deleted here too.
func (r *repository) fetch(ctx context.Context, cred *v1alpha1.GitCredentials) error {
	auth, err := authFor(r.url, cred)
	if err != nil {
		return err
	}
	err = r.repo.FetchContext(ctx, &gogit.FetchOptions{
		RemoteName: "origin",
		RefSpecs:   []config.RefSpec{"+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*"},
		Auth:       auth,
		Force:      true,
		Prune:      true,
		Tags:       gogit.NoTags,
	})
	if err != nil && !errors.Is(err, gogit.NoErrAlreadyUpToDate) {
		return fmt.Errorf("fetch %s: %w", r.url, err)
	}
	return nil
}

// authFor reads the secret a source names from its file; the store only
// ever holds the file's name.
func authFor(url string, cred *v1alpha1.GitCredentials) (transport.AuthMethod, error) {
	if cred == nil {
		return nil, nil
	}
	switch {
	case cred.TokenFile != "":
		b, err := os.ReadFile(cred.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("read the token of %s (spec.credentials.tokenFile; it must exist on every node): %w", url, err)
		}
		user := cred.Username
		if user == "" {
			user = "git"
		}
		return &githttp.BasicAuth{Username: user, Password: strings.TrimSpace(string(b))}, nil
	case cred.SSHKeyFile != "":
		keys, err := gitssh.NewPublicKeysFromFile("git", cred.SSHKeyFile, "")
		if err != nil {
			return nil, fmt.Errorf("read the SSH key of %s (spec.credentials.sshKeyFile; it must exist on every node): %w", url, err)
		}
		if cred.KnownHostsFile != "" {
			cb, err := gitssh.NewKnownHostsCallback(cred.KnownHostsFile)
			if err != nil {
				return nil, fmt.Errorf("read spec.credentials.knownHostsFile %s: %w", cred.KnownHostsFile, err)
			}
			keys.HostKeyCallback = cb
		}
		return keys, nil
	}
	return nil, nil
}

// resolve is the commit ref names now.
func (r *repository) resolve(ref v1alpha1.GitRef) (string, error) {
	switch {
	case ref.Commit != "":
		if _, err := r.repo.CommitObject(plumbing.NewHash(ref.Commit)); err != nil {
			return "", fmt.Errorf("commit %s is not in %s (no branch or tag holds it): %w", ref.Commit, r.url, err)
		}
		return ref.Commit, nil
	case ref.Tag != "":
		return r.tagCommit(ref.Tag)
	case ref.SemVer != "":
		return r.semverCommit(ref.SemVer)
	}
	h, err := r.repo.Reference(plumbing.NewRemoteReferenceName("origin", ref.Branch), true)
	if err != nil {
		return "", fmt.Errorf("branch %s is not in %s: %w", ref.Branch, r.url, err)
	}
	return h.Hash().String(), nil
}

// tagCommit is the commit a tag names, through an annotated tag.
func (r *repository) tagCommit(tag string) (string, error) {
	ref, err := r.repo.Reference(plumbing.NewTagReferenceName(tag), true)
	if err != nil {
		return "", fmt.Errorf("tag %s is not in %s: %w", tag, r.url, err)
	}
	if t, err := r.repo.TagObject(ref.Hash()); err == nil {
		c, err := t.Commit()
		if err != nil {
			return "", fmt.Errorf("tag %s does not name a commit: %w", tag, err)
		}
		return c.Hash.String(), nil
	}
	return ref.Hash().String(), nil
}

// semverCommit is the commit of the highest tag in the range.
func (r *repository) semverCommit(rng string) (string, error) {
	c, err := semver.NewConstraint(rng)
	if err != nil {
		return "", fmt.Errorf("semver range %q: %w", rng, err)
	}
	tags, err := r.repo.Tags()
	if err != nil {
		return "", err
	}
	var best *semver.Version
	bestTag := ""
	err = tags.ForEach(func(ref *plumbing.Reference) error {
		name := ref.Name().Short()
		v, err := semver.NewVersion(name)
		if err != nil || !c.Check(v) {
			return nil
		}
		if best == nil || v.GreaterThan(best) {
			best, bestTag = v, name
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("read the tags of %s: %w", r.url, err)
	}
	if best == nil {
		return "", fmt.Errorf("no tag of %s is in the range %q", r.url, rng)
	}
	return r.tagCommit(bestTag)
}

// manifests are the manifest files under dir in commit's tree (repository
// paths to contents): not hidden ones, not those dir's .sitekeeperignore
// names. Only committed content is ever read.
func (r *repository) manifests(commit, dir string) (map[string][]byte, error) {
	c, err := r.repo.CommitObject(plumbing.NewHash(commit))
	if err != nil {
		return nil, fmt.Errorf("read commit %s: %w", commit, err)
	}
	tree, err := c.Tree()
	if err != nil {
		return nil, fmt.Errorf("read the tree of %s: %w", commit, err)
	}
	if dir != "" {
		if tree, err = tree.Tree(dir); err != nil {
			return nil, fmt.Errorf("path %s is not a folder in commit %s (spec.path): %w", dir, short(commit), err)
		}
	}
	var ignored func(string) bool
	if f, err := tree.File(gitrev.IgnoreFile); err == nil {
		content, err := f.Contents()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", gitrev.IgnoreFile, err)
		}
		ignored = gitrev.ParseIgnore([]byte(content))
	}
	out := map[string][]byte{}
	err = tree.Files().ForEach(func(f *object.File) error {
		if !manifest.IsManifestFile(f.Name) || gitrev.Hidden(f.Name) || (ignored != nil && ignored(f.Name)) {
			return nil
		}
		if f.Mode == filemode.Symlink {
			return fmt.Errorf("%s is a symlink in commit %s: refused; commit the file itself", path.Join(dir, f.Name), short(commit))
		}
		rd, err := f.Reader()
		if err != nil {
			return err
		}
		defer rd.Close()
		b, err := io.ReadAll(rd)
		if err != nil {
			return err
		}
		out[path.Join(dir, f.Name)] = b
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the manifests of commit %s: %w", short(commit), err)
	}
	return out, nil
}

// Package gitrev names the revision of a manifest folder: the commit id of
// the git work tree holding it (read from .git without running git, with a
// "-dirty" mark when a manifest differs from the index), else a hash of the
// manifests' contents.
package gitrev

import (
	"bytes"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
	"github.com/sitekeeper/sitekeeper/internal/manifest"
)

// Revision describes a folder's revision.
type Revision struct {
	// ID is "git:<commit>" when the manifests loaded are exactly the
	// commit's, "git:<commit>-dirty+<hash of what was loaded>" when they
	// differ (so that two different dirty states never share a name), or
	// "sha256:<hash>" outside a git work tree.
	ID string
	// Commit is the commit id, empty outside git.
	Commit string
	Dirty  bool
	// Uncommitted lists the manifest files (relative to the work tree's
	// root, sorted) that differ from the index or are not tracked: what
	// the "-dirty" mark stands for.
	Uncommitted []string
}

// Of returns the revision of dir, whose manifest files (paths and contents)
// are given so that the content hash and the dirty check read them once;
// ignored (nil for none) is the folder's .sitekeeperignore, as the caller
// read it to load the files.
func Of(dir string, files map[string][]byte, ignored func(rel string) bool) Revision {
	root, gitDir, ok := findGit(dir)
	if ok {
		// The loaded content against HEAD's tree, as git sees it
		// (autocrlf, submodules, any index version); .git's own files
		// and the index are the fallback when go-git cannot read the
		// repository.
		// A manifest HEAD holds and the folder's ignore file leaves out
		// was not loaded, and is not missing.
		isManifest := func(rel string) bool {
			return manifest.IsManifestFile(path.Base(rel)) && (ignored == nil || !ignored(rel))
		}
		commit, changed, read := changedFromHead(root, dir, files, isManifest)
		var err error
		if !read {
			if commit, err = head(gitDir); err == nil {
				changed = uncommitted(root, gitDir, files)
			}
		}
		if err == nil {
			id := "git:" + commit
			if len(changed) > 0 {
				id += "-dirty+" + contentHash(dir, files)[:8]
			}
			return Revision{ID: id, Commit: commit, Dirty: len(changed) > 0, Uncommitted: changed}
		}
	}
	return Revision{ID: "sha256:" + contentHash(dir, files)}
}

// CommitOf is the commit a revision id names ("" for a content hash).
func CommitOf(id string) string {
	c, ok := strings.CutPrefix(id, "git:")
	if !ok {
		return ""
	}
	c, _, _ = strings.Cut(c, "-dirty")
	return c
}

// IgnoreFile lists, in gitignore syntax, the files of a source's folder
// that are not its manifests (a pipeline's azure-pipelines.yml,
// renovate.json): they are neither loaded nor refused.
const IgnoreFile = ".sitekeeperignore"

// ParseIgnore returns whether a path relative to the folder that holds an
// ignore file with content is ignored; nil when it ignores nothing.
func ParseIgnore(content []byte) func(rel string) bool {
	var ps []gitignore.Pattern
	for _, line := range strings.Split(strings.ReplaceAll(string(content), "\r\n", "\n"), "\n") {
		if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		ps = append(ps, gitignore.ParsePattern(strings.TrimRight(line, " \t"), nil))
	}
	if len(ps) == 0 {
		return nil
	}
	m := gitignore.NewMatcher(ps)
	return func(rel string) bool {
		parts := strings.Split(filepath.ToSlash(rel), "/")
		// A file is ignored when it or any folder above it is.
		for i := 1; i < len(parts); i++ {
			if m.Match(parts[:i], true) {
				return true
			}
		}
		return m.Match(parts, false)
	}
}

// SitekeeperIgnore reads dir's ignore file (nil, nil when it has none).
func SitekeeperIgnore(dir string) (func(rel string) bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, IgnoreFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return ParseIgnore(b), nil
}

func contentHash(dir string, files map[string][]byte) string {
	h := sha256.New()
	var names []string
	for p := range files {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		rel, _ := filepath.Rel(dir, p)
		fmt.Fprintf(h, "%s\x00%d\x00", filepath.ToSlash(rel), len(files[p]))
		h.Write(files[p])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// findGit walks up from dir to the work tree root holding .git (a folder,
// or a file "gitdir: ..." as in worktrees and submodules).
func findGit(dir string) (root, gitDir string, ok bool) {
	d, err := filepath.Abs(dir)
	if err != nil {
		return "", "", false
	}
	for {
		p := filepath.Join(d, ".git")
		if st, err := os.Stat(p); err == nil {
			if st.IsDir() {
				return d, p, true
			}
			if b, err := os.ReadFile(p); err == nil {
				if g, ok := strings.CutPrefix(strings.TrimSpace(string(b)), "gitdir: "); ok {
					if !filepath.IsAbs(g) {
						g = filepath.Join(d, g)
					}
					return d, g, true
				}
			}
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", "", false
		}
		d = parent
	}
}

// head resolves HEAD to a commit id: a detached id, a loose ref, or a
// packed ref.
func head(gitDir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(gitDir, "HEAD"))
	if err != nil {
		return "", err
	}
	h := strings.TrimSpace(string(b))
	ref, isRef := strings.CutPrefix(h, "ref: ")
	if !isRef {
		return h, nil
	}
	common := gitDir
	if c, err := os.ReadFile(filepath.Join(gitDir, "commondir")); err == nil {
		common = filepath.Join(gitDir, strings.TrimSpace(string(c)))
	}
	for _, g := range []string{gitDir, common} {
		if b, err := os.ReadFile(filepath.Join(g, filepath.FromSlash(ref))); err == nil {
			return strings.TrimSpace(string(b)), nil
		}
	}
	packed, err := os.ReadFile(filepath.Join(common, "packed-refs"))
	if err == nil {
		for _, line := range strings.Split(string(packed), "\n") {
			if id, name, ok := strings.Cut(line, " "); ok && name == ref {
				return id, nil
			}
		}
	}
	return "", fmt.Errorf("ref %s has no commit yet", ref)
}

// uncommitted compares each manifest's blob id with the index entry of its
// path; a missing entry (an untracked manifest) is uncommitted too. An index
// this reader does not understand (version 4) counts as clean.
func uncommitted(root, gitDir string, files map[string][]byte) []string {
	idx, ok := readIndex(filepath.Join(gitDir, "index"))
	if !ok {
		return nil
	}
	var out []string
	for p, content := range files {
		rel, err := filepath.Rel(root, p)
		if err != nil {
			out = append(out, p)
			continue
		}
		want, tracked := idx[filepath.ToSlash(rel)]
		if !tracked {
			out = append(out, filepath.ToSlash(rel))
			continue
		}
		h := sha1.New()
		fmt.Fprintf(h, "blob %d\x00", len(content))
		h.Write(content)
		if !bytes.Equal(h.Sum(nil), want) {
			out = append(out, filepath.ToSlash(rel))
		}
	}
	sort.Strings(out)
	return out
}

// readIndex reads path -> blob id from a version 2 or 3 git index.
func readIndex(path string) (map[string][]byte, bool) {
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 12 || string(b[:4]) != "DIRC" {
		return nil, false
	}
	version := binary.BigEndian.Uint32(b[4:8])
	if version != 2 && version != 3 {
		return nil, false
	}
	n := int(binary.BigEndian.Uint32(b[8:12]))
	out := make(map[string][]byte, n)
	off := 12
	for i := 0; i < n; i++ {
		if off+62 > len(b) {
			return nil, false
		}
		start := off
		sha := b[off+40 : off+60]
		flags := binary.BigEndian.Uint16(b[off+60 : off+62])
		off += 62
		if version == 3 && flags&0x4000 != 0 {
			off += 2
		}
		end := bytes.IndexByte(b[off:], 0)
		if end < 0 {
			return nil, false
		}
		name := string(b[off : off+end])
		off += end
		// Entries are padded with 1-8 NULs to a multiple of 8 bytes.
		entryLen := off - start
		off = start + (entryLen+8)&^7
		out[name] = sha
	}
	return out, true
}

// GitDir returns the .git folder of the work tree holding dir, if any.
func GitDir(dir string) (string, bool) {
	_, g, ok := findGit(dir)
	return g, ok
}

// Remote returns, for a folder inside a git work tree, the work tree's root
// and the URL of its remote (origin, else the first by name), read with
// go-git from the repository's config (linked work trees included). ok is
// false outside git or without a remote.
func Remote(dir string) (root, url string, ok bool) {
	root, _, found := findGit(dir)
	if !found {
		return "", "", false
	}
	repo, err := gogit.PlainOpenWithOptions(root, &gogit.PlainOpenOptions{EnableDotGitCommonDir: true})
	if err != nil {
		return root, "", false
	}
	cfg, err := repo.Config()
	if err != nil || len(cfg.Remotes) == 0 {
		return root, "", false
	}
	name := "origin"
	if _, has := cfg.Remotes[name]; !has {
		name = slices.Sorted(maps.Keys(cfg.Remotes))[0]
	}
	if urls := cfg.Remotes[name].URLs; len(urls) > 0 {
		return root, urls[0], true
	}
	return root, "", false
}

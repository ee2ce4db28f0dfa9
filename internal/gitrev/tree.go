package gitrev

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/go-git/go-billy/v5/osfs"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// changedFromHead compares the manifests loaded from dir (paths and
// contents) with the tree of HEAD, read with go-git: a file whose blob
// differs (after core.autocrlf's normalisation, as git itself would
// commit it), a file HEAD does not hold, and a manifest HEAD holds under
// dir that was not loaded (removed, not committed) are changed. A file in
// a submodule is compared with the submodule's own HEAD, and the
// submodule's HEAD with the commit its parent records. It returns HEAD's
// commit too; ok is false when the repository cannot be read with go-git.
func changedFromHead(root, dir string, files map[string][]byte, isManifest func(name string) bool) (commit string, changed []string, ok bool) {
	repo, err := gogit.PlainOpenWithOptions(root, &gogit.PlainOpenOptions{EnableDotGitCommonDir: true})
	if err != nil {
		return "", nil, false
	}
	ref, err := repo.Head()
	if err != nil {
		return "", nil, false
	}
	tree, crlf, err := treeOf(repo, ref.Hash())
	if err != nil {
		return "", nil, false
	}
	subs := map[string]*object.Tree{} // submodule path -> its HEAD tree
	subCRLF := map[string]bool{}
	loaded := map[string]bool{}
	for p, content := range files {
		rel, err := filepath.Rel(root, p)
		if err != nil || strings.HasPrefix(rel, "..") {
			changed = append(changed, filepath.ToSlash(p))
			continue
		}
		rel = filepath.ToSlash(rel)
		loaded[rel] = true
		t, norm, inner := tree, crlf, rel
		if sub := submoduleOf(tree, rel); sub != "" {
			st, ok := subs[sub]
			if !ok {
				st, subCRLF[sub] = submoduleTree(tree, root, sub)
				subs[sub] = st
			}
			if st == nil {
				changed = append(changed, rel)
				continue
			}
			t, norm, inner = st, subCRLF[sub], strings.TrimPrefix(rel, sub+"/")
		}
		f, err := t.File(inner)
		if err != nil || f.Hash.String() != blobID(content, norm) {
			changed = append(changed, rel)
		}
	}
	// Manifests HEAD holds under dir that were not loaded: removed, and
	// the removal not committed.
	prefix, err := filepath.Rel(root, dir)
	if err == nil {
		prefix = filepath.ToSlash(prefix)
		err = tree.Files().ForEach(func(f *object.File) error {
			if !under(f.Name, prefix) || Hidden(relTo(f.Name, prefix)) || !isManifest(relTo(f.Name, prefix)) || loaded[f.Name] {
				return nil
			}
			changed = append(changed, f.Name)
			return nil
		})
		if err != nil {
			// A tree that cannot be read whole cannot show the content
			// clean: the caller falls back to its own reading.
			return "", nil, false
		}
	}
	sort.Strings(changed)
	return ref.Hash().String(), changed, true
}

// treeOf is commit's tree, and whether the repository commits CRLF line
// ends as LF (core.autocrlf).
func treeOf(repo *gogit.Repository, commit plumbing.Hash) (*object.Tree, bool, error) {
	c, err := repo.CommitObject(commit)
	if err != nil {
		return nil, false, err
	}
	t, err := c.Tree()
	if err != nil {
		return nil, false, err
	}
	crlf := false
	if cfg, err := repo.Config(); err == nil {
		switch strings.ToLower(cfg.Raw.Section("core").Option("autocrlf")) {
		case "true", "input":
			crlf = true
		}
	}
	return t, crlf, nil
}

// submoduleOf returns the path of the submodule rel lies in ("" when none).
func submoduleOf(t *object.Tree, rel string) string {
	parts := strings.Split(rel, "/")
	for i := 1; i < len(parts); i++ {
		p := strings.Join(parts[:i], "/")
		if e, err := t.FindEntry(p); err == nil && e.Mode == filemode.Submodule {
			return p
		}
	}
	return ""
}

// submoduleTree is the HEAD tree of the submodule at sub, when its HEAD is
// the commit the parent records (nil otherwise: all its files changed).
func submoduleTree(parent *object.Tree, root, sub string) (*object.Tree, bool) {
	e, err := parent.FindEntry(sub)
	if err != nil {
		return nil, false
	}
	repo, err := gogit.PlainOpenWithOptions(filepath.Join(root, filepath.FromSlash(sub)), &gogit.PlainOpenOptions{EnableDotGitCommonDir: true})
	if err != nil {
		return nil, false
	}
	ref, err := repo.Head()
	if err != nil || ref.Hash() != e.Hash {
		return nil, false
	}
	t, crlf, err := treeOf(repo, ref.Hash())
	if err != nil {
		return nil, false
	}
	return t, crlf
}

// blobID is git's id of content as a blob; with autocrlf, CRLF line ends
// are committed as LF, so they are normalised first.
func blobID(content []byte, crlf bool) string {
	if crlf {
		content = []byte(strings.ReplaceAll(string(content), "\r\n", "\n"))
	}
	h := sha1.New()
	fmt.Fprintf(h, "blob %d\x00", len(content))
	h.Write(content)
	return hex.EncodeToString(h.Sum(nil))
}

// relTo is name relative to prefix (both repository paths).
func relTo(name, prefix string) string {
	if prefix == "." || prefix == "" {
		return name
	}
	return strings.TrimPrefix(name, prefix+"/")
}

func under(name, prefix string) bool {
	return prefix == "." || prefix == "" || strings.HasPrefix(name, prefix+"/")
}

// Hidden reports whether a path relative to a source's folder lies in a
// hidden file or folder (the loader skips those).
func Hidden(rel string) bool {
	for _, p := range strings.Split(rel, "/") {
		if strings.HasPrefix(p, ".") {
			return true
		}
	}
	return false
}

// Ignored returns whether a path (absolute, or relative to the work tree)
// is ignored by the .gitignore files and .git/info/exclude of the work
// tree holding dir, as git decides; nil outside git. A manifest git
// ignores is not part of any commit, so the loader leaves it out.
func Ignored(dir string) func(p string, isDir bool) bool {
	root, _, ok := findGit(dir)
	if !ok {
		return nil
	}
	ps, err := gitignore.ReadPatterns(osfs.New(root), nil)
	if err != nil || len(ps) == 0 {
		return nil
	}
	m := gitignore.NewMatcher(ps)
	return func(p string, isDir bool) bool {
		if filepath.IsAbs(p) {
			rel, err := filepath.Rel(root, p)
			if err != nil || strings.HasPrefix(rel, "..") {
				return false
			}
			p = rel
		}
		return m.Match(strings.Split(filepath.ToSlash(p), "/"), isDir)
	}
}

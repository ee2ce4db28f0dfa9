package gitrev

import (
	"errors"
	"fmt"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
)

// Relation is how a checkout's commit stands to the commit applied last.
type Relation int

// The relations.
const (
	// Forward: the checkout's commit descends from the applied one.
	Forward Relation = iota
	// Backward: the checkout's commit is an ancestor of the applied one.
	Backward
	// Unrelated: the two share no history at all (another repository, an
	// orphan branch).
	Unrelated
	// Missing: the applied commit is not in this checkout's repository (it
	// was never fetched here: the checkout is behind, or is another
	// repository).
	Missing
	// Rewritten: the checkout's commit is a new commit beside the applied
	// one, from a common ancestor (an amend, a rebase, a force-pushed
	// rewrite of the tip): new content, not a return to old.
	Rewritten
)

func (r Relation) String() string {
	return [...]string{"forward", "backward", "unrelated", "missing", "rewritten"}[r]
}

// Relate says how commit head of the repository holding dir stands to
// commit applied, reading the commit graph with go-git (no git needed on
// the node, Windows included).
func Relate(dir, applied, head string) (Relation, error) {
	repo, err := gogit.PlainOpenWithOptions(dir, &gogit.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if err != nil {
		return 0, fmt.Errorf("open the repository of %s: %w", dir, err)
	}
	return RelateIn(repo, applied, head)
}

// RelateIn is Relate in an opened repository (a git source's fetched
// clone).
func RelateIn(repo *gogit.Repository, applied, head string) (Relation, error) {
	hc, err := repo.CommitObject(plumbing.NewHash(head))
	if err != nil {
		return 0, fmt.Errorf("read commit %s: %w", head, err)
	}
	ac, err := repo.CommitObject(plumbing.NewHash(applied))
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return Missing, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read commit %s: %w", applied, err)
	}
	if ok, err := ac.IsAncestor(hc); err != nil {
		return 0, err
	} else if ok {
		return Forward, nil
	}
	if ok, err := hc.IsAncestor(ac); err != nil {
		return 0, err
	} else if ok {
		return Backward, nil
	}
	if bases, err := hc.MergeBase(ac); err == nil && len(bases) > 0 {
		return Rewritten, nil
	}
	return Unrelated, nil
}

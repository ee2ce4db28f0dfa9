package v1alpha1

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
)

// KindGitSource is the kind of a git repository Sitekeeper fetches itself.
const KindGitSource = "GitSource"

// GitSource is a git repository the placement leader fetches and applies:
// the manifests under spec.path of the commit spec.ref resolves to, as one
// change set, pruning what the source applied before and no longer holds.
// It is stored beside the objects it applies, not among them: it places
// nothing on a node.
type GitSource struct {
	TypeMeta `json:",inline"`
	// Metadata names the source; the objects it applies carry the name in
	// the sitekeeper.io/source annotation.
	Metadata ObjectMeta `json:"metadata"`
	// Spec says what to fetch and how.
	Spec GitSourceSpec `json:"spec"`
}

// GitSourceSpec declares a git source.
type GitSourceSpec struct {
	// URL is the repository: https://, http://, ssh://, git@host:path or
	// file://.
	URL string `json:"url"`
	// Ref is what to follow; the default is the branch main.
	Ref GitRef `json:"ref,omitzero"`
	// Path is the folder inside the repository that holds the manifests
	// (default: its root).
	Path string `json:"path,omitempty"`
	// Interval is how often the repository is fetched (default 1m).
	Interval Duration `json:"interval,omitzero"`
	// Prune deletes the objects the source applied and no longer holds
	// (default true).
	Prune *bool `json:"prune,omitempty"`
	// Suspend stops fetching and applying; what was applied stays.
	Suspend bool `json:"suspend,omitempty"`
	// AllowRollback applies a commit that is older than the applied one, or
	// unrelated to it; by default such a commit is refused.
	AllowRollback bool `json:"allowRollback,omitempty"`
	// Timeout is how long an applied revision may take to be served (every
	// object it applied Ready) before the source is Degraded (default 5m).
	Timeout Duration `json:"timeout,omitzero"`
	// Credentials name files on every node that hold the secret; the
	// secret itself is never stored.
	Credentials *GitCredentials `json:"credentials,omitempty"`
	// Notify lists webhooks told of this source's revisions and of
	// failovers of the groups it applied.
	Notify []Webhook `json:"notify,omitempty"`
}

// GitRef is one of: a branch, a tag, a semver range over the tags, or a
// commit.
type GitRef struct {
	Branch string `json:"branch,omitempty"`
	Tag    string `json:"tag,omitempty"`
	// SemVer is a range such as ">=1.2.0 <2.0.0" or "~1.4": the highest tag
	// in it is followed.
	SemVer string `json:"semver,omitempty"`
	Commit string `json:"commit,omitempty"`
}

// String is the ref as a person writes it: branch main, tag v1.2.0.
func (r GitRef) String() string {
	switch {
	case r.Commit != "":
		return "commit " + r.Commit
	case r.Tag != "":
		return "tag " + r.Tag
	case r.SemVer != "":
		return "semver " + r.SemVer
	}
	return "branch " + r.Branch
}

// GitCredentials name the files that hold a source's secret.
type GitCredentials struct {
	// TokenFile holds an HTTPS token (or password), sent with Username.
	TokenFile string `json:"tokenFile,omitempty"`
	// Username goes with the token (default "git").
	Username string `json:"username,omitempty"`
	// SSHKeyFile holds a private key for an ssh:// or git@ URL.
	SSHKeyFile string `json:"sshKeyFile,omitempty"`
	// KnownHostsFile holds the server's host keys (default: the user's
	// known_hosts).
	KnownHostsFile string `json:"knownHostsFile,omitempty"`
}

// Webhook is a JSON POST to URL for the events listed, signed with HMAC
// SHA-256 when SecretFile is set.
type Webhook struct {
	URL string `json:"url"`
	// Events are any of applied, refused, degraded and failover; empty
	// means all.
	Events []string `json:"events,omitempty"`
	// SecretFile holds the HMAC key; the signature is sent as
	// X-Sitekeeper-Signature: sha256=<hex>.
	SecretFile string `json:"secretFile,omitempty"`
}

// The webhook events.
const (
	NotifyApplied  = "applied"
	NotifyRefused  = "refused"
	NotifyDegraded = "degraded"
	NotifyFailover = "failover"
)

// Wants reports whether the webhook asked for event.
func (w Webhook) Wants(event string) bool {
	if len(w.Events) == 0 {
		return true
	}
	for _, e := range w.Events {
		if strings.EqualFold(e, event) {
			return true
		}
	}
	return false
}

// AnnotationReconcile asks for a fetch and apply now: its value is a
// token (a time) the source's status echoes once handled; a value ending
// in ";allow-rollback" applies even an older commit, that once.
const AnnotationReconcile = "sitekeeper.io/reconcile"

// Default fills in the defaults.
func (g *GitSource) Default() {
	g.APIVersion, g.Kind = APIVersion, KindGitSource
	if g.Spec.Ref == (GitRef{}) {
		g.Spec.Ref.Branch = "main"
	}
	if g.Spec.Interval.Duration == 0 {
		g.Spec.Interval.Duration = time.Minute
	}
	if g.Spec.Timeout.Duration == 0 {
		g.Spec.Timeout.Duration = 5 * time.Minute
	}
	if g.Spec.Prune == nil {
		t := true
		g.Spec.Prune = &t
	}
	g.Spec.Path = strings.Trim(strings.ReplaceAll(g.Spec.Path, `\`, "/"), "/")
}

var commitRE = regexp.MustCompile(`^[0-9a-f]{40}$`)

// Validate lists what is wrong with the source, each naming its field and
// the fix.
func (g *GitSource) Validate() []string {
	var errs []string
	add := func(field, format string, a ...any) {
		errs = append(errs, fmt.Sprintf("GitSource/%s: %s: %s", g.Metadata.Name, field, fmt.Sprintf(format, a...)))
	}
	if msg := nameProblem(g.Metadata.Name); msg != "" {
		add("metadata.name", "%s", msg)
	}
	if g.Spec.URL == "" {
		add("spec.url", "required: the repository's URL (https://, ssh://, git@host:path or file://)")
	} else if !strings.HasPrefix(g.Spec.URL, "git@") {
		u, err := url.Parse(g.Spec.URL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http" && u.Scheme != "ssh" && u.Scheme != "file") {
			add("spec.url", "%q is not an https://, http://, ssh://, git@host:path or file:// URL", g.Spec.URL)
		} else if u.User != nil {
			if _, hasPassword := u.User.Password(); hasPassword {
				add("spec.url", "holds a password: put the token in a file on every node and name it in spec.credentials.tokenFile (the store keeps no secret)")
			}
		}
	}
	set := 0
	for _, v := range []string{g.Spec.Ref.Branch, g.Spec.Ref.Tag, g.Spec.Ref.SemVer, g.Spec.Ref.Commit} {
		if v != "" {
			set++
		}
	}
	if set > 1 {
		add("spec.ref", "set one of branch, tag, semver and commit, not %d", set)
	}
	if g.Spec.Ref.SemVer != "" {
		if _, err := semver.NewConstraint(g.Spec.Ref.SemVer); err != nil {
			add("spec.ref.semver", "%q is not a semver range (%v); write e.g. \">=1.2.0 <2.0.0\" or \"~1.4\"", g.Spec.Ref.SemVer, err)
		}
	}
	if c := g.Spec.Ref.Commit; c != "" && !commitRE.MatchString(c) {
		add("spec.ref.commit", "%q is not a full 40-character commit id", c)
	}
	for _, part := range strings.Split(g.Spec.Path, "/") {
		if part == ".." {
			add("spec.path", "%q leaves the repository; give a folder inside it", g.Spec.Path)
			break
		}
	}
	if d := g.Spec.Interval.Duration; d != 0 && (d < time.Second || d > 24*time.Hour) {
		add("spec.interval", "%s is out of range: from 1s to 24h", d)
	}
	if d := g.Spec.Timeout.Duration; d < 0 || d > 24*time.Hour {
		add("spec.timeout", "%s is out of range: from 0 (default 5m) to 24h", d)
	}
	if c := g.Spec.Credentials; c != nil && c.TokenFile != "" && c.SSHKeyFile != "" {
		add("spec.credentials", "set tokenFile (https) or sshKeyFile (ssh), not both")
	}
	for i, w := range g.Spec.Notify {
		u, err := url.Parse(w.URL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			add(fmt.Sprintf("spec.notify[%d].url", i), "%q is not an http:// or https:// URL", w.URL)
		}
		for _, e := range w.Events {
			switch strings.ToLower(e) {
			case NotifyApplied, NotifyRefused, NotifyDegraded, NotifyFailover:
			default:
				add(fmt.Sprintf("spec.notify[%d].events", i), "%q is not an event: use applied, refused, degraded or failover", e)
			}
		}
	}
	return errs
}

// nameProblem says what is wrong with a source name ("" when nothing).
func nameProblem(name string) string {
	if name == "" {
		return "required"
	}
	if len(name) > 63 || !regexp.MustCompile(`^[a-z0-9]([a-z0-9-]*[a-z0-9])?$`).MatchString(name) {
		return fmt.Sprintf("%q is not a name: lower-case letters, digits and '-', at most 63, starting and ending with a letter or digit", name)
	}
	return ""
}

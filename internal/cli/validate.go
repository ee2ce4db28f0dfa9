package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/diag"
	"github.com/sitekeeper/sitekeeper/internal/graph"
	"github.com/sitekeeper/sitekeeper/internal/manifest"
	"github.com/sitekeeper/sitekeeper/internal/printer"
	"github.com/sitekeeper/sitekeeper/internal/validation"
)

// fileFlags are the -f/-R flags shared by every command that reads manifests.
type fileFlags struct {
	files     []string
	recursive bool
	// sources, when set, receives the GitSource documents read (apply
	// stores them; validate checks them); other commands refuse them.
	sources *[]manifest.SourceDocument
}

func (f *fileFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringSliceVarP(&f.files, "filename", "f", nil, "file, folder or - (stdin) holding manifests; repeatable")
	cmd.Flags().BoolVarP(&f.recursive, "recursive", "R", false, "read folders given with -f recursively")
}

func (f *fileFlags) load(s *streams) ([]manifest.Document, validation.Result, error) {
	if len(f.files) == 0 {
		return nil, validation.Result{}, usagef("no manifests given; pass -f FILE, -f FOLDER or -f -")
	}
	docs, res := manifest.LoadAndValidate(f.files, manifest.Options{Recursive: f.recursive, Stdin: s.in, Sources: f.sources})
	return docs, res, nil
}

// validateOutput is one verdict on one set of manifests, so it is printed
// alone (kind ValidationResult), not as a List.
type validateOutput struct {
	APIVersion string        `json:"apiVersion"`
	Kind       string        `json:"kind"`
	Valid      bool          `json:"valid"`
	Errors     []diag.Error  `json:"errors"`
	Groups     []groupOutput `json:"groups"`
}

type groupOutput struct {
	Name       string   `json:"name"`
	Members    []string `json:"members"`
	Nodes      []string `json:"nodes"`
	Switchback string   `json:"switchback"`
}

func newValidateCmd(s *streams) *cobra.Command {
	ff := fileFlags{sources: &[]manifest.SourceDocument{}}
	var output string
	cmd := &cobra.Command{
		Use:   "validate -f PATH [-R] [-o table|wide|yaml|json]",
		Short: "Check manifests as one set, without applying anything",
		Long: `Validate loads every manifest given, checks the whole set against every rule
(names, references, bindings, placement, resource groups) and prints either the
objects and their resource groups, or every error with its file and line.
Exit status: 0 valid, 1 invalid, 2 usage error.`,
		Example: `  sitekeeper validate -f manifests/examples/active-active
  sitekeeper validate -f manifests/ -R -o json
  cat site.yaml | sitekeeper validate -f -`,
		Args: exactArgs(0, "no arguments (give manifests with -f)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(&output); err != nil {
				return err
			}
			docs, res, err := ff.load(s)
			if err != nil {
				return err
			}
			out := validateOutput{APIVersion: v1alpha1.APIVersion, Kind: "ValidationResult", Valid: len(res.Errors) == 0, Errors: res.Errors, Groups: []groupOutput{}}
			if out.Errors == nil {
				out.Errors = []diag.Error{}
			}
			if out.Valid && res.Graph != nil {
				for _, g := range res.Graph.Groups {
					out.Groups = append(out.Groups, toGroupOutput(g))
				}
			}
			if printer.Structured(output) {
				if err := printer.Encode(s.out, output, out); err != nil {
					return err
				}
			} else if out.Valid {
				printValid(s, docs, res.Graph, output == "wide")
				for _, sd := range *ff.sources {
					fmt.Fprintf(s.out, "  %-15s %s (%s:%d)\n", v1alpha1.KindGitSource+":", sd.Source.Metadata.Name, sd.File, sd.Line)
				}
			} else {
				for _, e := range res.Errors {
					fmt.Fprintln(s.err, e.Error())
				}
				fmt.Fprintf(s.err, "%d error(s); nothing is valid until all are fixed\n", len(res.Errors))
			}
			if !out.Valid {
				return silentError{ExitError}
			}
			return nil
		},
	}
	ff.register(cmd)
	outputFlag(cmd, &output, "wide: also where each object was read; yaml and json: a ValidationResult")
	return cmd
}

func toGroupOutput(g graph.Group) groupOutput {
	o := groupOutput{Name: g.Name, Nodes: g.Placement.Nodes, Switchback: string(g.Placement.Switchback)}
	for _, m := range g.Members {
		o.Members = append(o.Members, m.String())
	}
	if o.Nodes == nil {
		o.Nodes = []string{}
	}
	return o
}

func printValid(s *streams, docs []manifest.Document, g *graph.Graph, wide bool) {
	fmt.Fprintf(s.out, "valid: %d object(s)\n", len(docs))
	if wide {
		// Each object with the file and line it was read from.
		tw := printer.NewTable(s.out)
		for _, d := range docs {
			fmt.Fprintf(tw, "  %s/%s\t%s:%d\n", d.Object.GetKind(), d.Object.Meta().Name, d.File, d.Line)
		}
		_ = tw.Flush()
	} else {
		byKind := map[string][]string{}
		for _, d := range docs {
			byKind[d.Object.GetKind()] = append(byKind[d.Object.GetKind()], d.Object.Meta().Name)
		}
		for _, k := range []string{v1alpha1.KindIISSite, v1alpha1.KindIPResource, v1alpha1.KindVolumeResource} {
			if len(byKind[k]) > 0 {
				fmt.Fprintf(s.out, "  %-15s %s\n", k+":", strings.Join(byKind[k], ", "))
			}
		}
	}
	fmt.Fprintf(s.out, "resource groups: %d\n", len(g.Groups))
	for _, grp := range g.Groups {
		members := make([]string, len(grp.Members))
		for i, m := range grp.Members {
			members[i] = m.String()
		}
		fmt.Fprintf(s.out, "  %s: nodes %s, switchback %s\n    members: %s\n", grp.Name, strings.Join(grp.Placement.Nodes, " > "), grp.Placement.Switchback, strings.Join(members, ", "))
		if txt := validation.CouplingText(&grp); txt != "" && countSites(grp) > 1 {
			fmt.Fprintf(s.out, "    coupled: %s\n", txt)
		}
	}
}

func countSites(g graph.Group) int {
	n := 0
	for _, m := range g.Members {
		if m.Kind == v1alpha1.KindIISSite {
			n++
		}
	}
	return n
}

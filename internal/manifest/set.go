package manifest

import (
	"github.com/sitekeeper/sitekeeper/api/v1alpha1"
	"github.com/sitekeeper/sitekeeper/internal/diag"
	"github.com/sitekeeper/sitekeeper/internal/validation"
)

// Objects returns the objects of docs, in order.
func Objects(docs []Document) []v1alpha1.Object {
	objs := make([]v1alpha1.Object, len(docs))
	for i := range docs {
		objs[i] = docs[i].Object
	}
	return objs
}

// Locate fills the file and line of errors that carry the index of the
// document they are about.
func Locate(errs diag.List, docs []Document) {
	for i := range errs {
		e := &errs[i]
		if e.File != "" || e.Index < 0 || e.Index >= len(docs) {
			continue
		}
		d := &docs[e.Index]
		e.File, e.Line = d.File, d.LineOf(e.Field)
	}
}

// LoadAndValidate loads paths and validates them as one set. The result's
// errors include load errors and are located and sorted; objects are
// returned only when there is no error at all.
func LoadAndValidate(paths []string, opts Options) ([]Document, validation.Result) {
	docs, errs := Load(paths, opts)
	validate := validation.Validate
	if len(errs) > 0 {
		validate = validation.ValidatePartial
	}
	res := validate(Objects(docs))
	Locate(res.Errors, docs)
	res.Errors = append(errs, res.Errors...)
	res.Errors.Sort()
	if len(res.Errors) > 0 {
		return docs, res
	}
	if len(docs) == 0 && (opts.Sources == nil || len(*opts.Sources) == 0) {
		res.Errors = diag.List{{File: firstOr(paths), Message: "no manifests found; give a file, or a folder holding .yaml, .yml or .json files (-R for subfolders)", Index: -1}}
	}
	return docs, res
}

func firstOr(paths []string) string {
	if len(paths) == 0 {
		return ""
	}
	return paths[0]
}

package v1alpha1

import "embed"

// Sources holds this package's type declarations; `sitekeeper explain`
// reads their doc comments, so the reference never drifts from the code.
//
//go:embed meta.go condition_types.go iissite_types.go ipresource_types.go volumeresource_types.go
var Sources embed.FS

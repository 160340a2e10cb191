// Package migrations ships these files inside the billing service's binary, as goose's
// library reads them: goose.SetBaseFS(migrations.FS).
package migrations

import "embed"

//go:embed *.sql
var FS embed.FS

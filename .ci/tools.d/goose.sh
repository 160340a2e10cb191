# Sourced by .ci/tools: the goose CLI and our goose-library driver (tests/support/goose_driver),
# pinned, built into $TOOLS_BIN. Only goose's PostgreSQL driver is compiled in: the
# build tags drop the other databases' drivers, which are most of a cold build's time.
GOOSE_VERSION=v3.29.0 # its go.mod asks for go 1.26.0
goose_tags=no_clickhouse,no_libsql,no_mssql,no_azuresql,no_mysql,no_sqlite3,no_vertica,no_ydb
go install -tags "$goose_tags" "github.com/pressly/goose/v3/cmd/goose@$GOOSE_VERSION"
# The driver's go.mod must pin the same goose; -mod=readonly fails instead of editing go.sum.
grep -q "github.com/pressly/goose/v3 $GOOSE_VERSION\$" tests/support/goose_driver/go.mod \
    || { echo "tests/support/goose_driver/go.mod does not pin goose $GOOSE_VERSION" >&2; return 1; }
(cd tests/support/goose_driver && go install -mod=readonly .)

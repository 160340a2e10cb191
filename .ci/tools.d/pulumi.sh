# shellcheck shell=bash
# Sourced by .ci/tools (TOOLS_BIN, GOBIN and GOFLAGS are set there): the Pulumi engine the
# real-engine tests drive, built from the Go module proxy at pinned versions.
#
# pkg/v3's go.mod points its sibling sdk/v3 at ../sdk, which `go install pkg@version`
# refuses. So the CLI is built as a module build in a scratch module, generated here under
# .tools/ (gitignored), that requires both modules at the same served version: with the
# relative replacement gone, sdk/v3 resolves to the served release. Fetched code is never
# committed; Go's module and build caches make a second run take seconds.
PULUMI_VERSION=v3.259.0

pulumi_build_cli() {
    local scratch="$TOOLS_BIN/../src/pulumi-$PULUMI_VERSION"
    mkdir -p "$scratch"
    # pkg/v3's one other replacement (a fork of a clipboard package) is applied as upstream does.
    cat >"$scratch/go.mod" <<GOMOD
module api-migrations.invalid/tools/pulumi

go 1.25.11

require (
	github.com/pulumi/pulumi/pkg/v3 $PULUMI_VERSION
	github.com/pulumi/pulumi/sdk/v3 $PULUMI_VERSION
)

replace github.com/atotto/clipboard => github.com/tgummerer/clipboard v0.0.0-20241001131231-d02d263e614e
GOMOD
    (
        cd "$scratch"
        [ -s go.sum ] || go mod download github.com/pulumi/pulumi/pkg/v3
        go get github.com/pulumi/pulumi/pkg/v3/cmd/pulumi@"$PULUMI_VERSION"
        go build -o "$TOOLS_BIN/pulumi" \
            -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" \
            github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
    )
}

pulumi_build_cli

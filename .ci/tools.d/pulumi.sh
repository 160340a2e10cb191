# shellcheck shell=bash
# Sourced by .ci/tools (TOOLS_BIN, GOBIN and GOFLAGS are set there): the Pulumi engine that
# tests/engine/test_pulumi_engine.py drives, built from the Go module proxy at a pinned version.
#
# pkg/v3's go.mod points its sibling sdk/v3 at ../sdk, which `go install pkg@version`
# refuses. So the CLI is built as a module build in a scratch module, generated here under
# .tools/ (gitignored), that requires both modules at the same served version: with the
# relative replacement gone, sdk/v3 resolves to the served release. Fetched code is never
# committed; Go's module and build caches make a second run take seconds.
#
# Not built, because the module proxy refuses them (HTTP 403 "This module version is not
# available"), so the tests work without them (tests/support/engine.py says how):
# - github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3 at v3.259.0 (untagged:
#   also refused as its pseudo-version v3.0.0-20260819165155-0ac56e876614);
# - github.com/pulumi/pulumi-docker/provider/v5 at v5.1.0 and v5.2.0 (the plugin of the Python
#   SDK pulumi-docker 5.2.0), whose go.mod also replaces its Terraform provider with ../upstream.
# Automatic plugin downloads stay off wherever the CLI runs (PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION).
PULUMI_VERSION=v3.259.0

pulumi_build_cli() {
    local scratch="$TOOLS_BIN/../src/pulumi-$PULUMI_VERSION"
    if [ ! -s "$scratch/go.sum" ]; then
        rm -rf "$scratch" && mkdir -p "$scratch"
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
        (cd "$scratch" && go get github.com/pulumi/pulumi/pkg/v3/cmd/pulumi@"$PULUMI_VERSION")
    fi
    (
        cd "$scratch"
        go build -o "$TOOLS_BIN/pulumi" \
            -ldflags "-X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$PULUMI_VERSION" \
            github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
    )
    [ "$("$TOOLS_BIN/pulumi" version)" = "$PULUMI_VERSION" ]
}

pulumi_build_cli

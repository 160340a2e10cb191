# shellcheck shell=bash
# Sourced by dev/up.sh, dev/down.sh and dev/pulumi: where the local dev stack keeps its state.
#
# Everything lives under .dev/ (gitignored): the Pulumi file backend and its passphrase, the
# database password, and the pid and container id of every process `make dev` starts, which is
# how `make dev-down` stops exactly those and nothing else.
DEV_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEV_STATE=${DEV_STATE:-$DEV_ROOT/.dev}

# A laptop-local stack: a file backend and a passphrase file, unless the user chose others.
export PULUMI_BACKEND_URL=${PULUMI_BACKEND_URL:-file://$DEV_STATE/pulumi}
if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ] && [ -z "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" ]; then
    export PULUMI_CONFIG_PASSPHRASE_FILE=$DEV_STATE/passphrase
fi
# Always the dev agent (Pulumi.dev.yaml's nomad:address): a NOMAD_ADDR or NOMAD_TOKEN left in
# the shell for a real cluster must never receive the dev stack's commands.
export NOMAD_ADDR=http://127.0.0.1:4646
unset NOMAD_TOKEN

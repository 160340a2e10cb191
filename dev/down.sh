#!/usr/bin/env bash
# `make dev-down`: tear down what dev/up.sh started, and only that: the job through Pulumi while
# the agent still runs, then the Nomad dev agent by its pid, then the PostgreSQL and registry
# containers by the ids recorded in .dev/. The Pulumi backend and its passphrase stay in .dev/.
set -uo pipefail
# shellcheck source=dev/env.sh
. "$(dirname "$0")/env.sh"
cd "$DEV_ROOT" || exit 1

say() { printf '== %s\n' "$*"; }
warn() { printf 'dev/down.sh: %s\n' "$*" >&2; }

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

stop_pid() {  # stop_pid PID-FILE NAME: SIGINT (Nomad's graceful stop), then SIGKILL after 30 s
    local pid_file=$1 name=$2 pid
    pid_alive "$pid_file" || { rm -f "$pid_file"; return 0; }
    pid=$(cat "$pid_file")
    say "stopping $name (pid $pid)"
    kill -INT "$pid" 2>/dev/null
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then
        warn "$name (pid $pid) did not stop in 30 s: killing it"
        kill -KILL "$pid" 2>/dev/null
    fi
    rm -f "$pid_file"
}

remove_container() {  # remove_container NAME: the container whose id dev/up.sh recorded
    local cid_file="$DEV_STATE/$1.cid"
    [ -s "$cid_file" ] || return 0
    say "removing the $1 container $(cut -c1-12 "$cid_file")"
    docker rm --force --volumes "$(cat "$cid_file")" >/dev/null || warn "could not remove the $1 container"
    rm -f "$cid_file"
}

dev_stack_exists() {  # false too when the backend does not exist (make dev never got that far)
    local stacks
    stacks=$(pulumi stack ls --json 2>/dev/null) || return 1
    python3 -c 'import json, sys; sys.exit(0 if any(s["name"] == "dev" for s in json.loads(sys.argv[1])) else 1)' "$stacks"
}

job_running() { curl -fsS --max-time 2 "$NOMAD_ADDR/v1/job/api" >/dev/null 2>&1; }

destroyed=false
if command -v pulumi >/dev/null && dev_stack_exists; then
    if pid_alive "$DEV_STATE/nomad.pid"; then
        say "pulumi destroy --stack dev"
        pulumi destroy --stack dev --yes --non-interactive && destroyed=true
    fi
    if ! $destroyed; then
        # Its Nomad agent, registry and database are about to go (or are gone): the state
        # would name a job, a variable and pushed images that no longer exist.
        warn "the dev stack could not be destroyed: forgetting its resources (they live in what is stopped next)"
        pulumi stack rm dev --force --yes --preserve-config --non-interactive || warn "pulumi stack rm dev failed"
    fi
fi
# Whatever still runs the job (a failed destroy) goes before its agent, so no task container outlives it.
if pid_alive "$DEV_STATE/nomad.pid" && job_running && command -v nomad >/dev/null; then
    say "nomad job stop -purge api"
    nomad job stop -purge api >/dev/null || warn "nomad job stop failed"
fi
stop_pid "$DEV_STATE/nomad.pid" "the Nomad dev agent"
remove_container registry
remove_container postgres
rm -f "$DEV_STATE/postgres.env" "$DEV_STATE/database-url" "$DEV_STATE/scratch-url" "$DEV_STATE/api-image"
say "dev stack is down"

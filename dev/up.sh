#!/usr/bin/env bash
# `make dev`: the whole dev stack on a laptop with Docker and Nomad, then `pulumi up --stack dev`.
#
#   1. PostgreSQL in a container on 127.0.0.1:$DEV_POSTGRES_PORT (or the database in DEV_DATABASE_URL);
#      the same server is the scratch server previews rehearse on (or the one in DEV_SCRATCH_URL)
#   2. a registry in a container on $DEV_REGISTRY (localhost:5000, as in Pulumi.dev.yaml), or the one
#      already answering there
#   3. the API stand-in (dev/api-stand-in: answers GET /health), built here and pushed to that registry
#   4. `nomad agent -dev` (its docker driver runs the job) on 127.0.0.1:4646
#   5. the dev stack's config (databaseUrl and scratchServerUrl as secrets, apiImage by digest), then
#      `pulumi up --stack dev`
#
# `dev/up.sh --services-only` stops after step 3 (no Nomad, no Pulumi). Running it again reuses
# whatever is still running. `make dev-down` (dev/down.sh) stops everything this started, by pid
# and container id.
set -euo pipefail
# shellcheck source=dev/env.sh
. "$(dirname "$0")/env.sh"
cd "$DEV_ROOT"

DEV_REGISTRY=${DEV_REGISTRY:-localhost:5000}
DEV_POSTGRES_PORT=${DEV_POSTGRES_PORT:-55432}
DEV_POSTGRES_IMAGE=${DEV_POSTGRES_IMAGE:-postgres:15}
DEV_REGISTRY_IMAGE=${DEV_REGISTRY_IMAGE:-registry:2}
PYTHON=python3
[ -x .venv/bin/python ] && PYTHON=.venv/bin/python

say() { printf '== %s\n' "$*"; }
die() { printf 'dev/up.sh: %s\n' "$*" >&2; exit 1; }

wait_for() {  # wait_for SECONDS COMMAND...
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 1
    done
}

# A container this script started and that still runs: its id file under .dev/ names it.
container_running() {  # container_running NAME
    local cid_file="$DEV_STATE/$1.cid"
    [ -s "$cid_file" ] && [ "$(docker inspect --format '{{.State.Running}}' "$(cat "$cid_file")" 2>/dev/null)" = true ]
}

start_container() {  # start_container NAME DOCKER-RUN-ARGS...
    local name=$1; shift
    rm -f "$DEV_STATE/$name.cid"
    docker run --detach --cidfile "$DEV_STATE/$name.cid" --label io.e2b.api-migrations.dev="$name" "$@" >/dev/null
}

registry_answers() { curl -fsS --max-time 2 "http://$DEV_REGISTRY/v2/" >/dev/null; }

database_answers() {  # the URL comes through the environment, never the command line
    DEV_CHECK_URL=$1 "$PYTHON" -c '
import os, sys, psycopg
try:
    psycopg.connect(os.environ["DEV_CHECK_URL"], connect_timeout=3).close()
except psycopg.Error as exc:
    sys.exit(f"database: {str(exc).strip()}")'
}

postgres_ready() { docker exec "$(cat "$DEV_STATE/postgres.cid")" pg_isready -q -h 127.0.0.1 -U postgres -d api; }

start_postgres() {
    local url_file="$DEV_STATE/database-url" scratch_file="$DEV_STATE/scratch-url"
    if [ -n "${DEV_DATABASE_URL:-}" ]; then
        say "database: DEV_DATABASE_URL"
        (umask 077 && printf '%s' "$DEV_DATABASE_URL" >"$url_file")
        # Your server's role may not create databases: the rehearsal is off unless you name one that may.
        rm -f "$scratch_file"
        [ -z "${DEV_SCRATCH_URL:-}" ] || (umask 077 && printf '%s' "$DEV_SCRATCH_URL" >"$scratch_file")
    elif container_running postgres; then
        say "database: PostgreSQL container $(cut -c1-12 "$DEV_STATE/postgres.cid") already runs"
    else
        say "database: PostgreSQL ($DEV_POSTGRES_IMAGE) on 127.0.0.1:$DEV_POSTGRES_PORT"
        local password
        password=$("$PYTHON" -c 'import secrets; print(secrets.token_hex(16))')
        # The password goes through an env file, so it never shows in `ps` or the shell history.
        (umask 077 && printf 'POSTGRES_PASSWORD=%s\nPOSTGRES_DB=api\n' "$password" >"$DEV_STATE/postgres.env")
        (umask 077 && printf 'postgresql://postgres:%s@127.0.0.1:%s/api' "$password" "$DEV_POSTGRES_PORT" >"$url_file")
        # The container's superuser may create the rehearsal's throwaway databases beside api.
        (umask 077 && printf 'postgresql://postgres:%s@127.0.0.1:%s/postgres' "$password" "$DEV_POSTGRES_PORT" \
            >"$scratch_file")
        start_container postgres --env-file "$DEV_STATE/postgres.env" \
            --publish "127.0.0.1:$DEV_POSTGRES_PORT:5432" "$DEV_POSTGRES_IMAGE"
        # Over TCP: the image's first-start server listens on its socket only, so this waits for the real one.
        wait_for 90 postgres_ready || die "PostgreSQL did not become ready: docker logs $(cat "$DEV_STATE/postgres.cid")"
    fi
    database_answers "$(cat "$url_file")" || die "the database does not accept connections (its URL is in $url_file)"
}

start_registry() {
    if registry_answers; then
        say "registry: $DEV_REGISTRY already answers"
        return
    fi
    case $DEV_REGISTRY in
        localhost:* | 127.0.0.1:*) ;;
        *) die "no registry answers at http://$DEV_REGISTRY/v2/ and only a local one can be started" ;;
    esac
    say "registry: $DEV_REGISTRY_IMAGE on $DEV_REGISTRY"
    start_container registry --publish "127.0.0.1:${DEV_REGISTRY##*:}:5000" "$DEV_REGISTRY_IMAGE"
    wait_for 30 registry_answers || die "the registry did not answer at http://$DEV_REGISTRY/v2/"
}

push_api_stand_in() {
    local tag="$DEV_REGISTRY/api:dev" build_args=()
    # Only for a machine that cannot pull the stand-in's python base (CI builds on a local one).
    [ -n "${DEV_BASE_IMAGE:-}" ] && build_args+=(--build-arg "BASE_IMAGE=$DEV_BASE_IMAGE")
    say "API stand-in: building $tag"
    docker build --quiet ${build_args[@]+"${build_args[@]}"} --tag "$tag" dev/api-stand-in >/dev/null
    docker push --quiet "$tag" >/dev/null
    # The job pins images by digest, as in staging and prod.
    docker inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$tag" \
        | grep -m1 "^$DEV_REGISTRY/api@sha256:" >"$DEV_STATE/api-image" \
        || die "no digest for $tag after the push"
    say "API stand-in: $(cat "$DEV_STATE/api-image")"
}

nomad_ready() {  # the agent answers and its node's docker driver is healthy
    curl -fsS --max-time 2 "$NOMAD_ADDR/v1/nodes" | "$PYTHON" -c '
import json, sys
nodes = json.load(sys.stdin)
sys.exit(0 if any(n.get("Drivers", {}).get("docker", {}).get("Healthy") for n in nodes) else 1)'
}

start_nomad() {
    local pid_file="$DEV_STATE/nomad.pid"
    if [ -s "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
        say "nomad: dev agent $(cat "$pid_file") already runs"
    else
        curl -fsS --max-time 2 "$NOMAD_ADDR/v1/agent/health" >/dev/null 2>&1 \
            && die "something else already answers at $NOMAD_ADDR: stop it first (make dev-down stops only what it started)"
        say "nomad: nomad agent -dev on $NOMAD_ADDR"
        nomad agent -dev -bind 127.0.0.1 >"$DEV_STATE/nomad.log" 2>&1 &
        echo $! >"$pid_file"
    fi
    wait_for 60 nomad_ready || die "Nomad's docker driver is not healthy after 60 s: see $DEV_STATE/nomad.log"
}

configure_and_deploy() {
    if [ "${PULUMI_CONFIG_PASSPHRASE_FILE:-}" = "$DEV_STATE/passphrase" ] && [ ! -s "$DEV_STATE/passphrase" ]; then
        (umask 077 && "$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(32))' >"$DEV_STATE/passphrase")
    fi
    case $PULUMI_BACKEND_URL in "file://$DEV_STATE"/*) mkdir -p "${PULUMI_BACKEND_URL#file://}" ;; esac
    say "pulumi: stack dev on $PULUMI_BACKEND_URL"
    pulumi stack select --create dev --non-interactive
    # Through stdin: the URL and its password stay out of argv; Pulumi stores it encrypted.
    pulumi config set --secret databaseUrl --non-interactive <"$DEV_STATE/database-url"
    if [ -s "$DEV_STATE/scratch-url" ]; then
        pulumi config set --secret scratchServerUrl --non-interactive <"$DEV_STATE/scratch-url"
    elif pulumi config get scratchServerUrl >/dev/null 2>&1; then
        pulumi config rm scratchServerUrl --non-interactive
    fi
    pulumi config set apiImage "$(cat "$DEV_STATE/api-image")" --non-interactive
    pulumi config set registry "$DEV_REGISTRY" --non-interactive
    pulumi up --stack dev --yes --non-interactive
}

services_only=false
case ${1:-} in
    --services-only) services_only=true ;;
    "") ;;
    *) die "usage: dev/up.sh [--services-only]" ;;
esac

command -v docker >/dev/null || die "docker is not installed: the dev stack runs PostgreSQL, the registry and the job in Docker"
docker info >/dev/null 2>&1 || die "no Docker daemon answers (docker info failed): start Docker first"
if ! $services_only; then
    command -v nomad >/dev/null || die "nomad is not installed: https://developer.hashicorp.com/nomad/install"
    command -v pulumi >/dev/null || die "pulumi is not installed: https://www.pulumi.com/docs/install/"
fi
mkdir -p "$DEV_STATE"
chmod 700 "$DEV_STATE"
on_exit() {
    local status=$?
    [ "$status" -eq 0 ] || echo "dev/up.sh failed; whatever it started still runs: make dev-down stops it" >&2
}
trap on_exit EXIT

start_postgres
start_registry
push_api_stand_in
if $services_only; then
    say "services are up (--services-only: no Nomad, no Pulumi); the database URL is in $DEV_STATE/database-url"
    exit 0
fi
start_nomad
configure_and_deploy
say "dev stack is up: nomad job status api; make status ENV=dev; make dev-down stops it all"

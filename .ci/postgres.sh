#!/usr/bin/env bash
# A throwaway PostgreSQL server on a free localhost port, for the multi-host tests (Debian/Ubuntu).
#
#   .ci/postgres.sh start        installs the server package when absent (apt-get), initdb in a new temp
#                                folder, starts it; prints the URL (line 1) and the folder (line 2)
#   .ci/postgres.sh start --durable   the same with PostgreSQL's durable defaults (fsync, synchronous_commit
#                                and full_page_writes on): what a real store runs with, for benchmarks
#   .ci/postgres.sh stop DIR     stops the server started in DIR and removes DIR
#
# Exit codes: 0 ok, 3 no server binaries and none could be installed, 1 anything else.
# The server trusts local connections and (without --durable) runs with fsync off: test data only.
set -euo pipefail

log() { echo "postgres.sh: $*" >&2; }

find_bindir() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [[ -x "$dir/initdb" && -x "$dir/pg_ctl" ]]; then echo "$dir"; return 0; fi
    done
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v initdb)"; return 0
    fi
    return 1
}

install_server() {
    command -v apt-get >/dev/null 2>&1 || { log "no apt-get: install PostgreSQL yourself"; return 1; }
    local sudo=()
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then sudo=(sudo -n); else
            log "not root and no password-less sudo: cannot install postgresql"; return 1
        fi
    fi
    log "installing the postgresql server package (apt-get)"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2 ||
        { "${sudo[@]}" apt-get update -qq >&2 &&
          "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2; }
}

free_port() {
    local port
    for _ in $(seq 1 50); do
        port=$((20000 + RANDOM % 40000))
        # nothing listening there: bash's /dev/tcp connect fails
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return 0; fi
    done
    return 1
}

# initdb refuses to run as root: run the server as the `postgres` user the package creates
as_owner() {
    if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
    local bindir dir port url
    # fsync off is the test server's speed; --durable keeps every commit on disk before it returns
    local durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    case "${1:-}" in
        "") ;;
        --durable) durability="-c fsync=on -c synchronous_commit=on -c full_page_writes=on" ;;
        *) log "unknown option ${1}: start [--durable]"; exit 2 ;;
    esac
    bindir=$(find_bindir) || { install_server || exit 3; bindir=$(find_bindir) || exit 3; }
    dir=$(mktemp -d /tmp/tunetui-pg.XXXXXX)
    if [[ $(id -u) -eq 0 ]]; then
        id postgres >/dev/null 2>&1 || { log "root, but no postgres user to run the server as"; exit 3; }
        chown postgres: "$dir"
    fi
    as_owner "$bindir/initdb" -D "$dir/data" -U tunetui --auth=trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 ||
        { log "initdb failed:"; cat "$dir/initdb.log" >&2; exit 1; }
    for _ in 1 2 3; do
        port=$(free_port) || { log "no free port"; exit 1; }
        if as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
            -o "-p $port -k $dir -c listen_addresses=127.0.0.1 $durability -c max_connections=200" \
            start >&2; then
            url="postgresql://tunetui@127.0.0.1:$port/tunetui"  # the plain form the README shows
            as_owner "$bindir/createdb" -h 127.0.0.1 -p "$port" -U tunetui tunetui
            echo "$bindir" >"$dir/bindir"
            echo "$url"
            echo "$dir"
            return 0
        fi
        log "start on port $port failed; retrying"
    done
    cat "$dir/server.log" >&2 || true
    exit 1
}

stop() {
    local dir=${1:?usage: postgres.sh stop DIR}
    [[ -d "$dir/data" ]] || { log "no server folder at $dir"; exit 1; }
    as_owner "$(cat "$dir/bindir")/pg_ctl" -D "$dir/data" -m immediate -w stop >&2 || true
    rm -rf "$dir"
}

case "${1:-}" in
    start) start "${2:-}" ;;
    stop) stop "${2:-}" ;;
    *) echo "usage: $0 start [--durable] | stop DIR" >&2; exit 2 ;;
esac

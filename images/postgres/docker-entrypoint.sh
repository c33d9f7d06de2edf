#!/bin/bash
# The postgres stand-in's entrypoint: what compose apps rely on in the
# upstream image's, written for this image.
#   POSTGRES_PASSWORD, POSTGRES_USER (default postgres), POSTGRES_DB (default
#   the user) and their _FILE forms (the value read from a file, a compose
#   secret say; setting both forms is an error); POSTGRES_INITDB_ARGS (more
#   initdb arguments, word-split as a shell would); POSTGRES_INITDB_WALDIR;
#   POSTGRES_HOST_AUTH_METHOD (how network clients log in; default the
#   server's password_encryption, scram-sha-256).
# On a data directory without a database it runs initdb, then each
# /docker-entrypoint-initdb.d/ file (*.sql, *.sql.gz, *.sql.xz; *.sh: run if
# executable, else sourced) against a server that listens on its unix socket
# only, once. Started as root it gives PGDATA to the postgres
# user and runs again as that user; started as any other user (`user:` in
# compose) it uses what that user may write.
set -Eeo pipefail

# say MESSAGE...: a line on stderr, which compose and the console show.
say() { printf '%s\n' "$*" >&2; }

# from_env_or_file VAR [DEFAULT]: VAR from itself or from the file VAR_FILE
# names (never both), else DEFAULT; exported, VAR_FILE dropped.
from_env_or_file() {
    local name=$1 file_name="${1}_FILE" value=${2:-}
    if [ -n "${!name:-}" ] && [ -n "${!file_name:-}" ]; then
        say "error: both $name and $file_name are set (but are exclusive)"
        exit 1
    fi
    if [ -n "${!name:-}" ]; then
        value=${!name}
    elif [ -n "${!file_name:-}" ]; then
        value=$(<"${!file_name}")
    fi
    export "$name=$value"
    unset "$file_name"
}

# read_settings: the POSTGRES_* settings, defaults filled in.
read_settings() {
    from_env_or_file POSTGRES_PASSWORD
    from_env_or_file POSTGRES_USER postgres
    from_env_or_file POSTGRES_DB "$POSTGRES_USER"
    from_env_or_file POSTGRES_INITDB_ARGS
    : "${POSTGRES_HOST_AUTH_METHOD:=}"
}

# has_database: PGDATA already holds a cluster (initdb writes PG_VERSION).
has_database() { [ -s "$PGDATA/PG_VERSION" ]; }

# prepare_directories: PGDATA, the socket folder and the WAL folder exist with
# the modes the server insists on; as root, everything in them is postgres's.
prepare_directories() {
    mkdir -p "$PGDATA"
    # A bind mount may refuse a chmod; the server then says what it needs.
    chmod 700 "$PGDATA" || :
    mkdir -p /var/run/postgresql || :
    chmod 3775 /var/run/postgresql || :
    if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
        mkdir -p "$POSTGRES_INITDB_WALDIR"
        chmod 700 "$POSTGRES_INITDB_WALDIR"
    fi
    if [ "$(id -u)" = 0 ]; then
        local dir
        for dir in "$PGDATA" /var/run/postgresql ${POSTGRES_INITDB_WALDIR:+"$POSTGRES_INITDB_WALDIR"}; do
            find "$dir" ! -user postgres -exec chown postgres:postgres {} +
        done
    fi
}

# refuse_without_password: upstream's refusal (the same words) when network
# clients would have no password to give; upstream's warning for `trust`.
refuse_without_password() {
    if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
        cat >&2 <<'EOF'
Error: Database is uninitialized and superuser password is not specified.
       You must specify POSTGRES_PASSWORD to a non-empty value for the
       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".

       You may also use "POSTGRES_HOST_AUTH_METHOD=trust" to allow all
       connections without a password. This is *not* recommended.

       See PostgreSQL documentation about "trust":
       https://www.postgresql.org/docs/current/auth-trust.html
EOF
        exit 1
    fi
    if [ "$POSTGRES_HOST_AUTH_METHOD" = trust ]; then
        cat >&2 <<'EOF'
********************************************************************************
WARNING: POSTGRES_HOST_AUTH_METHOD has been set to "trust". This will allow
         anyone with access to the Postgres port to access your database without
         a password, even if POSTGRES_PASSWORD is set. See PostgreSQL
         documentation about "trust":
         https://www.postgresql.org/docs/current/auth-trust.html
********************************************************************************
EOF
    fi
}

# create_cluster: initdb as the current user, the superuser named
# POSTGRES_USER with POSTGRES_PASSWORD; POSTGRES_INITDB_ARGS word-split.
create_cluster() {
    local extra=()
    if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
        extra+=(--waldir "$POSTGRES_INITDB_WALDIR")
    fi
    # initdb wants the running user in /etc/passwd; `user: 1000` need not be.
    if ! getent passwd "$(id -u)" >/dev/null 2>&1; then
        say "warning: uid $(id -u) has no /etc/passwd entry; initdb may refuse to run"
    fi
    # --pwfile takes the password's first line, and refuses an empty file.
    local pwfile
    pwfile=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
    # The arguments are split the way upstream's are (a shell's words, quotes kept).
    eval 'initdb --username="$POSTGRES_USER" --pwfile="$pwfile" '"$POSTGRES_INITDB_ARGS"' "${extra[@]}"'
    rm -f "$pwfile"
}

# allow_network_logins ARGS...: a pg_hba.conf line for every network client,
# with POSTGRES_HOST_AUTH_METHOD or the server's password_encryption (as
# configured by ARGS, the server's command line).
allow_network_logins() {
    [ "${1:-}" = postgres ] && shift
    local method=$POSTGRES_HOST_AUTH_METHOD
    [ -n "$method" ] || method=$(postgres -C password_encryption "$@")
    printf '\nhost all all all %s\n' "$method" >>"$PGDATA/pg_hba.conf"
}

# sql_in DB ARGS...: psql in database DB as the superuser, on the unix
# socket whatever PGHOST says, stopping at the first error.
sql_in() {
    local db=$1
    shift
    PGHOST='' PGHOSTADDR='' psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc --dbname "$db" "$@"
}
# sql ARGS...: psql in POSTGRES_DB (what upstream's init scripts may call as
# docker_process_sql, or as "${psql[@]}").
sql() { sql_in "$POSTGRES_DB" "$@"; }
docker_process_sql() { sql "$@"; }

# with_temporary_server ARGS... -- COMMAND...: COMMAND while a server runs on
# the unix socket only (ARGS: the server's command line, for its settings).
with_temporary_server() {
    local args=()
    while [ "$1" != -- ]; do args+=("$1"); shift; done
    shift
    [ "${args[0]:-}" = postgres ] && args=("${args[@]:1}")
    args+=(-c "listen_addresses=" -p "${PGPORT:-5432}")
    NOTIFY_SOCKET='' PGUSER="${PGUSER:-$POSTGRES_USER}" pg_ctl -D "$PGDATA" -o "$(printf '%q ' "${args[@]}")" -w start
    "$@"
    PGUSER="${PGUSER:-$POSTGRES_USER}" pg_ctl -D "$PGDATA" -m fast -w stop
}

# create_database: POSTGRES_DB, unless initdb made it (postgres).
create_database() {
    local found
    found=$(sql_in postgres --set db="$POSTGRES_DB" --tuples-only <<<"SELECT 1 FROM pg_database WHERE datname = :'db';")
    if [ -z "$found" ]; then
        sql_in postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
    fi
}

# run_init_files FILES...: each init file by its kind, in the order given.
run_init_files() {
    # shellcheck disable=SC2034 # for the sourced scripts
    psql=(sql)
    local f
    for f; do
        case "$f" in
            *.sh)
                if [ -x "$f" ]; then
                    say "$0: running $f"
                    "$f"
                else
                    say "$0: sourcing $f"
                    # shellcheck disable=SC1090 # the app's own script
                    . "$f"
                fi
                ;;
            *.sql) say "$0: running $f"; sql -f "$f" ;;
            *.sql.gz) say "$0: running $f"; gzip -dc "$f" | sql ;;
            *.sql.xz) say "$0: running $f"; xz -dc "$f" | sql ;;
            *) say "$0: ignoring $f" ;;
        esac
    done
}

# first_start ARGS...: a new cluster, its database and the init files.
first_start() {
    refuse_without_password
    # Unreadable init files fail here, before a half-made cluster is left behind.
    ls /docker-entrypoint-initdb.d/ >/dev/null
    create_cluster
    allow_network_logins "$@"
    # For psql where POSTGRES_INITDB_ARGS asks local logins for a password too.
    export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
    with_temporary_server "$@" -- setup_and_init
    unset PGPASSWORD
    # pg_hba.conf's network line reaches the disk before the server takes
    # writes: the server flushes its own files, not that one, and a power cut
    # before the page cache's writeback (up to 30 s) left a cluster the next
    # start took for initialized, refusing every network login ("no
    # pg_hba.conf entry"; seen with QEMU killed after the first page).
    sync
    say ""
    say "PostgreSQL init process complete; ready for start up."
    say ""
}
setup_and_init() {
    create_database
    shopt -s nullglob
    run_init_files /docker-entrypoint-initdb.d/*
    shopt -u nullglob
}

# wants_server ARGS...: the command starts the server (not --help, --version, …).
wants_server() {
    [ "${1:-}" = postgres ] || return 1
    local arg
    for arg; do
        case "$arg" in
            -'?' | --help | --describe-config | -V | --version) return 1 ;;
        esac
    done
}

main() {
    # Flags alone are the server's: `command: -c max_connections=50`.
    if [ "${1:0:1}" = - ]; then
        set -- postgres "$@"
    fi
    if wants_server "$@"; then
        read_settings
        prepare_directories
        if [ "$(id -u)" = 0 ]; then
            exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
        fi
        if has_database; then
            say ""
            say "PostgreSQL Database directory appears to contain a database; Skipping initialization"
            say ""
        else
            first_start "$@"
        fi
    fi
    exec "$@"
}

main "$@"

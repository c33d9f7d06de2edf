#!/bin/sh
# The nginx image's entrypoint, as the upstream image's contract has it: when
# the command is nginx, run the configuration hooks in /docker-entrypoint.d/
# first (in name order: `*.sh` run, `*.envsh` sourced, each only if
# executable), then exec the command. NGINX_ENTRYPOINT_QUIET_LOGS silences it.
set -e

say() {
    [ -n "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ] || echo "$0: $*"
}

if [ "$1" = nginx ] || [ "$1" = nginx-debug ]; then
    hooks=$(find /docker-entrypoint.d/ -follow -type f 2>/dev/null | sort)
    if [ -n "$hooks" ]; then
        say "running the configuration hooks in /docker-entrypoint.d/"
        # One hook a line: names may hold spaces.
        newline='
'
        IFS=$newline
        for hook in $hooks; do
            IFS=' 	'"$newline"
            if [ ! -x "$hook" ]; then
                say "ignoring $hook, not executable"
                continue
            fi
            case "$hook" in
                *.envsh)
                    say "sourcing $hook"
                    # shellcheck disable=SC1090 # the hooks are the image user's
                    . "$hook"
                    ;;
                *.sh)
                    say "launching $hook"
                    "$hook"
                    ;;
                *) say "ignoring $hook" ;;
            esac
        done
        say "configuration complete; ready for start up"
    fi
fi

exec "$@"

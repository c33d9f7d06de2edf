#!/bin/bash
# Entrypoint of the mongo-express stand-in, with upstream's contract: a
# command other than `mongo-express` runs instead; otherwise it waits (up to
# ME_CONFIG_CONNECT_RETRIES seconds, 10 by default) for the host and port of
# ME_CONFIG_MONGODB_URL to take connections, unless the URL names several
# hosts (a replica set), then runs `node app`.
#
# mongo-express 1.0.2 (upstream's) asks for a login only when
# ME_CONFIG_BASICAUTH is `true`, the image's default; the 1.0.0 this image
# carries asks for one unless ME_CONFIG_BASICAUTH_USERNAME is empty. So any
# other value of ME_CONFIG_BASICAUTH empties the user name here, and
# upstream's `ME_CONFIG_BASICAUTH: false` serves without a login, as there.
set -eo pipefail

if [ "${1}" != "mongo-express" ]; then
    exec "$@"
fi

basic_auth=${ME_CONFIG_BASICAUTH_FILE:+$(<"$ME_CONFIG_BASICAUTH_FILE")}
basic_auth=${basic_auth:-${ME_CONFIG_BASICAUTH:-}}
if [ "${basic_auth,,}" != true ]; then
    unset ME_CONFIG_BASICAUTH_USERNAME_FILE
    export ME_CONFIG_BASICAUTH_USERNAME=
fi

wait_tcp_port() {
    local host=$1 port=$2 max_tries=$3 tries=1
    while ! exec 6<>"/dev/tcp/$host/$port" && [ "$tries" -lt "$max_tries" ]; do
        sleep 1
        tries=$((tries + 1))
        echo "$(date) retrying to connect to $host:$port ($tries/$max_tries)"
    done
    exec 6>&-
}

url=${ME_CONFIG_MONGODB_URL:-}
if [[ "$url" != *,* ]]; then
    work=${url#*://}   # no scheme
    work=${work%%/*}   # no path
    work=${work#*@}    # no user
    if [[ "$work" = *:* ]]; then
        host=${work%:*}
        port=${work#*:}
    else
        host=$work
        port=27017
    fi
    echo "Waiting for $host:$port..."
    wait_tcp_port "$host" "$port" "${ME_CONFIG_CONNECT_RETRIES:-10}"
fi

exec node app

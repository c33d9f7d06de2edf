#!/bin/bash
# Entrypoint of the rabbitmq stand-in, with upstream's contract: a rabbitmq*
# command started as root runs as rabbitmq (with gosu), rabbitmq-server first
# owning what is in /var/lib/rabbitmq; the variables upstream dropped in 3.9
# (RABBITMQ_SSL_*, RABBITMQ_VM_MEMORY_HIGH_WATERMARK, ...) stop it with
# upstream's words, as they would there; long node names where the host's
# long and short names differ. RABBITMQ_DEFAULT_USER, _PASS and _VHOST are
# read by RabbitMQ itself. One addition: the Erlang cookie is made before the
# server starts (RabbitMQ makes the same, a random one, where there is none),
# so that a healthcheck's rabbitmq-diagnostics, run as root while a slow
# machine still boots the server, does not make one first that rabbitmq
# cannot read.
set -euo pipefail

# make_cookie: $HOME/.erlang.cookie, 20 random capitals, read by its owner only.
make_cookie() {
	local cookie="${HOME:-/var/lib/rabbitmq}/.erlang.cookie"
	if [ ! -e "$cookie" ]; then
		# (tr stops on SIGPIPE when head has its 20: not a failure.)
		(set +o pipefail && umask 077 && tr -dc '[:upper:]' < /dev/urandom | head -c 20 > "$cookie")
	fi
}

if [ "$1" = rabbitmq-server ]; then
	make_cookie
fi

if [[ "$1" == rabbitmq* ]] && [ "$(id -u)" = 0 ]; then
	if [ "$1" = rabbitmq-server ]; then
		find /var/lib/rabbitmq ! -user rabbitmq -exec chown rabbitmq '{}' +
	fi
	exec gosu rabbitmq "${BASH_SOURCE[0]}" "$@"
fi

deprecated=(
	RABBITMQ_DEFAULT_PASS_FILE
	RABBITMQ_DEFAULT_USER_FILE
	RABBITMQ_MANAGEMENT_SSL_CACERTFILE
	RABBITMQ_MANAGEMENT_SSL_CERTFILE
	RABBITMQ_MANAGEMENT_SSL_DEPTH
	RABBITMQ_MANAGEMENT_SSL_FAIL_IF_NO_PEER_CERT
	RABBITMQ_MANAGEMENT_SSL_KEYFILE
	RABBITMQ_MANAGEMENT_SSL_VERIFY
	RABBITMQ_SSL_CACERTFILE
	RABBITMQ_SSL_CERTFILE
	RABBITMQ_SSL_DEPTH
	RABBITMQ_SSL_FAIL_IF_NO_PEER_CERT
	RABBITMQ_SSL_KEYFILE
	RABBITMQ_SSL_VERIFY
	RABBITMQ_VM_MEMORY_HIGH_WATERMARK
)
found=
for name in "${deprecated[@]}"; do
	if [ -n "${!name:-}" ]; then
		echo >&2 "error: $name is set but deprecated"
		found=1
	fi
done
if [ -n "$found" ]; then
	echo >&2 'error: deprecated environment variables detected'
	echo >&2
	echo >&2 'Please use a configuration file instead; visit https://www.rabbitmq.com/configure.html to learn more'
	echo >&2
	exit 1
fi

if [ -z "${RABBITMQ_USE_LONGNAME:-}" ] && [ "$(hostname)" != "$(hostname -s)" ]; then
	export RABBITMQ_USE_LONGNAME=true
fi

exec "$@"

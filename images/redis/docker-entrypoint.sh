#!/bin/sh
# Entrypoint of the redis stand-in, with the upstream image's contract: an
# option or a `*.conf` as the command runs redis-server with it; redis-server
# started as root owns its working folder (/data) and runs as `redis`; protected
# mode is off, as upstream builds it, unless the config file says otherwise
# (an option after it still wins); other commands run as they are.
set -e

case "$1" in
	-* | *.conf) set -- redis-server "$@" ;;
esac

if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
	# A new volume, or a host folder, may belong to someone else.
	find . ! -user redis -exec chown redis '{}' +
	exec gosu redis "$0" "$@"
fi

if [ "$1" = redis-server ]; then
	# Debian's redis-server keeps Redis's compiled default (protected mode
	# on), which refuses clients from other containers when no password is
	# set; upstream's build turns that default off. An explicit setting in
	# the config file is left alone; options come after the file, so a later
	# `--protected-mode yes` wins over the one added here.
	shift
	config=
	if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ] && [ -f "$1" ]; then
		config=$1
		shift
	fi
	if [ -z "$config" ] || ! grep -qE '^[[:space:]]*protected-mode' "$config"; then
		set -- --protected-mode no "$@"
	fi
	if [ -n "$config" ]; then
		set -- "$config" "$@"
	fi
	set -- redis-server "$@"
fi

# Redis's own service files run it with umask 077: files it writes stay private.
if [ "$(umask)" = 0022 ]; then
	umask 0077
fi

exec "$@"

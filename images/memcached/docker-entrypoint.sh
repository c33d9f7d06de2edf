#!/bin/sh
# Entrypoint of the memcached stand-in, upstream's contract: options alone
# (`-m 64`, `--threads=4`) are memcached's; any other command runs as it is.
set -e

if [ "${1#-}" != "$1" ]; then
	set -- memcached "$@"
fi

exec "$@"

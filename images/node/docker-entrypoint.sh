#!/bin/sh
# Entrypoint of the local node stand-in, with the upstream node image's
# contract: arguments that are not a command (`index.js`, `-e CODE`,
# `--version`) are node's, so `CMD ["index.js"]` runs `node index.js`;
# anything else (`npm start`, `sh`, `node app.js`) is run as it is.
set -e

# Whether "$1" must be handed to node rather than run: an option, a name that
# is no command on PATH, or a file here that is not executable (a script).
wants_node() {
	case "$1" in
	-*) return 0 ;;
	esac
	if ! command -v "$1" >/dev/null 2>&1; then
		return 0
	fi
	[ -f "$1" ] && [ ! -x "$1" ]
}

if [ "$#" -gt 0 ] && wants_node "$1"; then
	set -- node "$@"
fi
exec "$@"

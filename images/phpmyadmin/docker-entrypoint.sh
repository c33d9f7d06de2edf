#!/bin/sh
# Entrypoint of the local phpmyadmin stand-in: the cookie secret made at the
# first start (not in the image, which every build makes the same bytes),
# PHP's limits from upstream's UPLOAD_LIMIT, MEMORY_LIMIT and
# MAX_EXECUTION_TIME, then the command (PHP's server on APACHE_PORT, 80).
set -eu

secret=/var/lib/phpmyadmin/blowfish_secret.inc.php
if [ ! -s "$secret" ]; then
	mkdir -p /var/lib/phpmyadmin/tmp
	# shellcheck disable=SC2016 # PHP's code, not the shell's
	php -r 'echo "<?php\n\$cfg[\"blowfish_secret\"] = sodium_hex2bin(\"" . bin2hex(random_bytes(32)) . "\");\n";' > "$secret.new"
	mv "$secret.new" "$secret"
fi

if [ "$1" = "phpmyadmin-server" ]; then
	shift
	set -- php \
		-d "upload_max_filesize=${UPLOAD_LIMIT:-2048K}" \
		-d "post_max_size=${UPLOAD_LIMIT:-2048K}" \
		-d "memory_limit=${MEMORY_LIMIT:-512M}" \
		-d "max_execution_time=${MAX_EXECUTION_TIME:-600}" \
		-S "0.0.0.0:${APACHE_PORT:-80}" -t /var/www/html "$@"
fi
exec "$@"

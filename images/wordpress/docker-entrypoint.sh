#!/bin/bash
# docker-entrypoint.sh of the wordpress stand-in, with upstream's contract:
# when the command is Apache (`apache2-foreground`, `apache2 ...`) or
# `php-fpm`, and the working folder (/var/www/html, a volume) has no
# WordPress yet, WordPress is copied there from /usr/src/wordpress (Debian's
# package, links followed), owned by the user the server runs as; themes and
# plugins already in wp-content are kept. Then, when the folder has no
# wp-config.php and any WORDPRESS_* variable is set, wp-config.php is written
# from /usr/src/wordpress/wp-config-docker.php, which reads WORDPRESS_DB_HOST,
# _USER, _PASSWORD, _NAME, _CHARSET, _COLLATE, WORDPRESS_TABLE_PREFIX,
# WORDPRESS_DEBUG, the keys and salts and WORDPRESS_CONFIG_EXTRA (each also
# as NAME_FILE) from the environment whenever PHP runs; the keys and salts
# not given get random values now. Any other command runs as it is.
set -Eeuo pipefail

source_dir=/usr/src/wordpress

# The user and group files are written as: the server's when started as root,
# else whoever runs this.
owner() {
    if [ "$(id -u)" != 0 ]; then
        echo "$(id -u):$(id -g)"
        return
    fi
    case "$1" in
        apache2*)
            local user="${APACHE_RUN_USER:-www-data}" group="${APACHE_RUN_GROUP:-www-data}"
            # Apache takes `#1000` for a numeric id.
            echo "${user#\#}:${group#\#}"
            ;;
        *) echo www-data:www-data ;;
    esac
}

# Copy WordPress into the working folder, keeping what wp-content already has.
copy_wordpress() {
    local owner="$1" skip=() path
    if [ "$(id -u)" = 0 ] && [ "$(stat -c %u:%g .)" = 0:0 ]; then
        # A folder Docker made for the volume: the server must write to it.
        chown "$owner" .
    fi
    echo >&2 "WordPress not found in $PWD - copying now..."
    if [ -n "$(find . -mindepth 1 -maxdepth 1 ! -name wp-content -print -quit)" ]; then
        echo >&2 "WARNING: $PWD is not empty! (copying anyhow)"
    fi
    for path in "$source_dir"/wp-content/*/*/ "$source_dir"/.htaccess; do
        path="${path%/}"
        [ -e "$path" ] || continue
        path="${path#"$source_dir"/}"
        if [ -e "$path" ]; then
            echo >&2 "WARNING: '$PWD/$path' exists! (not copying the WordPress version)"
            skip+=(--exclude "./$path")
        fi
    done
    # The archive names the files' owner: root extracts them as the server's
    # in one pass (a `chown -R` after would walk them all again, which under
    # emulation takes minutes). Not root: the folder's own mode and times
    # are not ours to set.
    local create=(--create --file - --dereference --directory "$source_dir" --owner "${owner%%:*}" --group "${owner#*:}")
    local extract=(--extract --file -)
    [ "$(id -u)" = 0 ] || extract+=(--no-overwrite-dir)
    tar "${create[@]}" --exclude ./wp-config.php "${skip[@]}" . | tar "${extract[@]}"
    echo >&2 "Complete! WordPress has been successfully copied to $PWD"
}

# wp-config.php from the template, each unset key and salt a random one.
write_config() {
    local owner="$1" vars="$2"
    echo >&2 "No 'wp-config.php' found in $PWD, but 'WORDPRESS_...' variables supplied; copying '$source_dir/wp-config-docker.php' ($vars)"
    local line
    while IFS= read -r line || [ -n "$line" ]; do
        while [[ "$line" == *"put your unique phrase here"* ]]; do
            line="${line/put your unique phrase here/$(head -c 64 /dev/urandom | sha1sum | cut -d' ' -f1)}"
        done
        printf '%s\n' "$line"
    done <"$source_dir/wp-config-docker.php" >wp-config.php
    if [ "$(id -u)" = 0 ]; then
        # A file system that refuses chown (some NFS) keeps root's.
        chown "$owner" wp-config.php || true
    fi
}

if [[ "${1-}" == apache2* ]] || [ "${1-}" = php-fpm ]; then
    owner="$(owner "$1")"
    if [ ! -e index.php ] && [ ! -e wp-includes/version.php ]; then
        copy_wordpress "$owner"
    fi
    vars="$(compgen -e | grep '^WORDPRESS_' | tr '\n' ' ' | sed 's/ $//' || true)"
    if [ ! -s wp-config.php ] && [ -n "$vars" ]; then
        write_config "$owner" "$vars"
    fi
fi

exec "$@"

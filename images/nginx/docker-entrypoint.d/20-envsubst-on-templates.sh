#!/bin/sh
# Render every template under /etc/nginx/templates (`*.template`, sub-folders
# kept) into /etc/nginx/conf.d with envsubst, as the upstream image does: only
# variables set in the environment are replaced (nginx's own `$host` and the
# like stay as they are). NGINX_ENVSUBST_TEMPLATE_DIR, _TEMPLATE_SUFFIX,
# _OUTPUT_DIR and _FILTER (a regular expression the variable names must
# match) change where and what.
set -e

me=$(basename "$0")
templates=${NGINX_ENVSUBST_TEMPLATE_DIR:-/etc/nginx/templates}
suffix=${NGINX_ENVSUBST_TEMPLATE_SUFFIX:-.template}
output=${NGINX_ENVSUBST_OUTPUT_DIR:-/etc/nginx/conf.d}
filter=${NGINX_ENVSUBST_FILTER:-}

say() {
    [ -n "${NGINX_ENTRYPOINT_QUIET_LOGS:-}" ] || echo "$me: $*"
}

[ -d "$templates" ] || exit 0
if [ ! -w "$output" ]; then
    say "ERROR: $templates exists, but $output is not writable"
    exit 0
fi
# `${A} ${B} …` for every variable set whose name matches the filter.
defined=$(awk -v filter="$filter" 'END { for (name in ENVIRON) if (name ~ filter) printf "${%s} ", name }' </dev/null)
find "$templates" -follow -type f -name "*$suffix" | while read -r template; do
    relative=${template#"$templates/"}
    target="$output/${relative%"$suffix"}"
    mkdir -p "$(dirname "$target")"
    say "running envsubst on $template to $target"
    envsubst "$defined" <"$template" >"$target"
done

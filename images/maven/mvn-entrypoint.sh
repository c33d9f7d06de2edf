#!/bin/sh
# Entrypoint of the maven stand-in, as upstream's: files an image puts under
# /usr/share/maven/ref (settings.xml, a pre-filled repository/) are copied
# into the user's Maven folder ($MAVEN_CONFIG, /root/.m2) unless already
# there, then the command runs (`mvn` by default).
set -eu

ref=/usr/share/maven/ref
dest=${MAVEN_CONFIG:-$HOME/.m2}
if [ -d "$ref" ]; then
    mkdir -p "$dest"
    # Existing files win: a bind-mounted ~/.m2 is the user's.
    cp -R -n "$ref"/. "$dest"/ 2>/dev/null || true
fi
exec "$@"

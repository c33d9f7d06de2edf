#!/bin/sh
# The image's /app/prestart.sh: /start.sh sources it before gunicorn starts.
# An app replaces it with its own (migrations, waiting for a database).
echo "Running inside /app/prestart.sh, you could add migrations to this file"

# The WSGI app Gunicorn serves (run_pgadmin:app), in server mode: users log
# in. Importing pgAdmin4 makes pgAdmin's configuration database, and its
# first user from PGADMIN_SETUP_EMAIL and PGADMIN_SETUP_PASSWORD, where there
# is none yet (the entrypoint runs this file once for that).
import builtins

builtins.SERVER_MODE = True

from pgAdmin4 import app  # noqa: E402,F401

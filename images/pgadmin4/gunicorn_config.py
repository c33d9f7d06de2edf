# Gunicorn's settings for pgAdmin (-c gunicorn_config.py, in /pgadmin4): a
# worker may take as long as pgAdmin's sessions last (a long query), the
# access log names the logged-in user (pgAdmin sets X-Remote-User on its
# responses), and with pgAdmin's JSON_LOGGER both of Gunicorn's logs are
# JSON in pgAdmin's format (CONSOLE_LOG_FORMAT_JSON).
import gunicorn

from config import CONSOLE_LOG_FORMAT_JSON, CONSOLE_LOG_LEVEL, JSON_LOGGER, SESSION_EXPIRATION_TIME

gunicorn.SERVER_SOFTWARE = "Python"

timeout = SESSION_EXPIRATION_TIME * 60 * 60 * 24

access_log_format = '%(h)s %(l)s %({x-remote-user}o)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'


def _json_handler(stream):
    return {"class": "logging.StreamHandler", "formatter": "json", "stream": stream}


if JSON_LOGGER:
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "root": {"level": CONSOLE_LOG_LEVEL, "handlers": []},
        "loggers": {
            name: {"level": CONSOLE_LOG_LEVEL, "handlers": [handler], "propagate": True, "qualname": name}
            for name, handler in (("gunicorn.error", "error_console"), ("gunicorn.access", "console"))
        },
        "handlers": {
            "console": _json_handler("ext://sys.stdout"),
            "error_console": _json_handler("ext://sys.stderr"),
        },
        "formatters": {"json": {"class": "jsonformatter.JsonFormatter", "format": CONSOLE_LOG_FORMAT_JSON}},
    }

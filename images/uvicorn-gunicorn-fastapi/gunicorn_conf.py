"""/gunicorn_conf.py of the uvicorn-gunicorn-fastapi stand-in: gunicorn's
settings from the environment, with upstream's variables and defaults.

WEB_CONCURRENCY fixes the number of workers; otherwise WORKERS_PER_CORE (1)
times the cores, at least 2, at most MAX_WORKERS. BIND, else HOST:PORT
(0.0.0.0:80). LOG_LEVEL (info), ACCESS_LOG and ERROR_LOG ("-": the console,
empty: off), GRACEFUL_TIMEOUT and TIMEOUT (120 s), KEEP_ALIVE (5 s).
"""
import json
import multiprocessing
import os


def _workers():
    fixed = os.getenv("WEB_CONCURRENCY")
    if fixed:
        count = int(fixed)
        assert count > 0, "WEB_CONCURRENCY must be a positive number"
        return count
    per_core = float(os.getenv("WORKERS_PER_CORE", "1"))
    count = max(int(per_core * multiprocessing.cpu_count()), 2)
    cap = os.getenv("MAX_WORKERS")
    return min(count, int(cap)) if cap else count


host = os.getenv("HOST", "0.0.0.0")
port = os.getenv("PORT", "80")

loglevel = os.getenv("LOG_LEVEL", "info")
workers = _workers()
bind = os.getenv("BIND") or f"{host}:{port}"
errorlog = os.getenv("ERROR_LOG", "-") or None
accesslog = os.getenv("ACCESS_LOG", "-") or None
# Workers' heartbeat files in memory, not on the container's disk.
worker_tmp_dir = "/dev/shm"
graceful_timeout = int(os.getenv("GRACEFUL_TIMEOUT", "120"))
timeout = int(os.getenv("TIMEOUT", "120"))
keepalive = int(os.getenv("KEEP_ALIVE", "5"))

# What the settings came to, on the console, as upstream's image prints them.
print(
    json.dumps(
        {
            "loglevel": loglevel,
            "workers": workers,
            "bind": bind,
            "graceful_timeout": graceful_timeout,
            "timeout": timeout,
            "keepalive": keepalive,
            "errorlog": errorlog,
            "accesslog": accesslog,
            "workers_per_core": float(os.getenv("WORKERS_PER_CORE", "1")),
            "use_max_workers": int(os.getenv("MAX_WORKERS")) if os.getenv("MAX_WORKERS") else None,
            "host": host,
            "port": port,
        }
    )
)

"""Counts each visit in redis and records it in postgres; 200 only if both worked.

Each visit is recorded with the VM's boot (the kernel's boot id, which every
container shares): the page says how many boots each database remembers, so a
test that boots twice on one data disk sees whether what the first boot
committed (a postgres COMMIT, a redis write under `appendfsync always`) is
still there, after a clean stop or a power cut.
"""
import os

import psycopg
import redis
from flask import Flask

app = Flask(__name__)


def password():
    with open(os.environ["POSTGRES_PASSWORD_FILE"]) as f:
        return f.read().strip()


def database():
    return psycopg.connect(
        host=os.environ["DATABASE_HOST"],
        dbname=os.environ["DATABASE_NAME"],
        user="postgres",
        password=password(),
        connect_timeout=5,
    )


def boot_id():
    with open("/proc/sys/kernel/random/boot_id") as f:
        return f.read().strip()


@app.route("/")
def visit():
    boot = boot_id()
    cache = redis.Redis(host=os.environ["REDIS_HOST"], socket_timeout=5)
    hits = cache.incr("hits")
    cache.sadd("boots", boot)
    redis_boots = cache.scard("boots")
    with database() as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS visits (id serial PRIMARY KEY, at timestamptz DEFAULT now(), boot text)"
        )
        conn.execute("INSERT INTO visits (boot) VALUES (%s)", (boot,))
        rows, pg_boots = conn.execute("SELECT count(*), count(DISTINCT boot) FROM visits").fetchone()
    # Both writes are committed before the page is sent (psycopg commits when
    # the `with` block ends; redis answers after its fsync).
    return (
        f"visit {hits} (redis), {rows} rows in postgres\n"
        f"boots remembered: postgres {pg_boots}, redis {redis_boots}\n"
    )

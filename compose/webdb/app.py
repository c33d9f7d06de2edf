"""Counts each visit in redis and records it in postgres; 200 only if both worked."""
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


@app.route("/")
def visit():
    hits = redis.Redis(host=os.environ["REDIS_HOST"], socket_timeout=5).incr("hits")
    with database() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS visits (id serial PRIMARY KEY, at timestamptz DEFAULT now())")
        conn.execute("INSERT INTO visits DEFAULT VALUES")
        (rows,) = conn.execute("SELECT count(*) FROM visits").fetchone()
    return f"visit {hits} (redis), {rows} rows in postgres\n"

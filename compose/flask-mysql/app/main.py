import os
import pymysql
from flask import Flask, jsonify

app = Flask(__name__)


def db():
    return pymysql.connect(
        host=os.environ["MYSQL_HOST"],
        user=os.environ["MYSQL_USER"],
        password=os.environ["MYSQL_PASSWORD"],
        database=os.environ["MYSQL_DATABASE"],
    )


@app.route("/")
def index():
    conn = db()
    with conn:
        with conn.cursor() as cur:
            cur.execute("CREATE TABLE IF NOT EXISTS visits (id INT AUTO_INCREMENT PRIMARY KEY, at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)")
            cur.execute("INSERT INTO visits () VALUES ()")
            conn.commit()
            cur.execute("SELECT COUNT(*) FROM visits")
            (count,) = cur.fetchone()
            cur.execute("SELECT VERSION()")
            (version,) = cur.fetchone()
    return jsonify(visits=count, server=version)

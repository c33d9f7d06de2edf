import sys
from flask import Flask
from redis import Redis

app = Flask(__name__)
r = Redis(host="redis")

@app.get("/")
def index():
    return f"visits: {r.incr('visits')} on Python {sys.version.split()[0]}\n"

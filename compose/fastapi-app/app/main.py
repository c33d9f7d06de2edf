"""fastapi-app: one route, which says which worker of how many answered."""
import os

from fastapi import FastAPI

app = FastAPI()


@app.get("/")
def read_root():
    return {"app": "fastapi-app", "worker_pid": os.getpid(), "workers": os.environ.get("WEB_CONCURRENCY")}

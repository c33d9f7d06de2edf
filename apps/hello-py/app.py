"""hello-py: answers with the greeting the compose file bind-mounts at
/config/greeting.txt, so a page served proves the file reached the container."""
import os
import socket

from flask import Flask

app = Flask(__name__)


@app.get("/")
def index():
    with open("/config/greeting.txt", encoding="utf-8") as f:
        greeting = f.read().strip()
    name = os.environ.get("APP_NAME", "hello-py")
    return f"{greeting} from {name} on {socket.gethostname()}\n"

"""Reads the greeting mongo-init.js seeded and the tips mongoimport seeded,
writes a document to MongoDB and reads it back; 200 only if all worked."""
import datetime
import json
import os
import platform
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pymongo

# Connects lazily: the app starts before the database accepts connections.
client = pymongo.MongoClient(os.environ["MONGO_URL"], serverSelectionTimeoutMS=5000)
# Python 3.12's type statement: the app needs what its project asks for.
type Document = dict[str, object]

database = client.get_default_database()
visits = database.visits


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            greeting = database.greetings.find_one({})
            if greeting is None:
                raise RuntimeError("no greeting: mongo-init.js did not run")
            tips = [t["tip"] for t in database.tips.find({}).sort("_id")]
            if len(tips) != 2:
                raise RuntimeError(f"{len(tips)} tips, not the 2 of tips.json")
            doc: Document = {"path": self.path, "at": datetime.datetime.now(datetime.timezone.utc)}
            inserted = visits.insert_one(doc).inserted_id
            found = visits.find_one({"_id": inserted})
            if found is None or found["path"] != self.path:
                raise RuntimeError(f"document {inserted} did not read back")
            body = {
                "greeting": greeting["text"],
                "tips": tips,
                "id": str(inserted),
                "visits": visits.count_documents({}),
                "server": client.server_info()["version"],
                "python": platform.python_version(),
            }
            self.reply(200, body)
        except Exception as e:  # the answer says what failed
            self.reply(500, {"error": f"{type(e).__name__}: {e}"})

    def reply(self, status, body):
        data = json.dumps(body).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


if __name__ == "__main__":
    ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()

"""Publishes a message to RabbitMQ and gets it back; 200 only if it came back."""
import json
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pika

PARAMETERS = pika.URLParameters(os.environ["AMQP_URL"])


def connect():
    # rabbitmq-diagnostics' ping answers once the Erlang node is up, which is
    # before RabbitMQ listens for AMQP: wait for the listener, as apps do.
    for _ in range(90):
        try:
            return pika.BlockingConnection(PARAMETERS)
        except pika.exceptions.AMQPConnectionError:
            time.sleep(1)
    return pika.BlockingConnection(PARAMETERS)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            connection = connect()
            channel = connection.channel()
            channel.queue_declare(queue="requests", durable=True)
            sent = json.dumps({"path": self.path, "at": time.time()}).encode()
            channel.basic_publish(exchange="", routing_key="requests", body=sent)
            _, _, got = channel.basic_get(queue="requests", auto_ack=True)
            version = connection._impl.server_properties.get("version", "")
            if isinstance(version, bytes):
                version = version.decode()
            connection.close()
            if got != sent:
                raise RuntimeError(f"sent {sent!r}, got {got!r}")
            self.reply(200, {"message": json.loads(got), "rabbitmq": version})
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

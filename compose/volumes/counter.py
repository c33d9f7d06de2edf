"""Counts the boots of its VM on a named volume, and serves the count.

At start it adds one to /data/boots, written to a new file, flushed to the
disk (fsync) and renamed over the old one, as a database commits, and in the
same way to /project/boots, a project folder bind-mounted read-write; then
`GET /` answers `boots: N, project: M, scratch: new`. On a VM that keeps its
volumes and what services write to the project, the second boot says 2 for
both. /scratch is an anonymous volume, new for each container as Docker makes
one: a file an earlier boot left there makes it say `scratch: kept` instead.

It ignores SIGTERM, as many servers do that were never taught to stop: a
clean stop of its VM must kill it at its grace period (10 s), not wait longer.
"""

import http.server
import os
import signal

def count_this_boot(folder):
    path = os.path.join(folder, "boots")
    try:
        with open(path) as f:
            boots = int(f.read().strip() or 0)
    except FileNotFoundError:
        boots = 0
    boots += 1
    with open(path + ".new", "w") as f:
        f.write(f"{boots}\n")
        f.flush()
        os.fsync(f.fileno())
    os.rename(path + ".new", path)
    dir_fd = os.open(folder, os.O_RDONLY)
    os.fsync(dir_fd)
    os.close(dir_fd)
    return boots


def scratch_was_new():
    marker = "/scratch/left-by-an-earlier-boot"
    new = not os.path.exists(marker)
    with open(marker, "w") as f:
        f.write("an anonymous volume must not outlive its container\n")
    return new


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        scratch = "new" if SCRATCH_NEW else "kept"
        body = f"boots: {BOOTS}, project: {PROJECT_BOOTS}, scratch: {scratch}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


signal.signal(signal.SIGTERM, signal.SIG_IGN)
BOOTS = count_this_boot("/data")
PROJECT_BOOTS = count_this_boot("/project")
SCRATCH_NEW = scratch_was_new()
print(f"counter: boot {BOOTS}", flush=True)
http.server.HTTPServer(("", 8080), Handler).serve_forever()

#!/usr/bin/env python3
"""The image server of tests/server/test_image.sh: serves image_url requests on loopback.

Usage: image_http_server.py DIR PORT_FILE LOG_FILE
Listens on 127.0.0.1 (a free port, written to PORT_FILE once listening), appends the path of
every request to LOG_FILE (so a test can tell that a refused URL was never fetched) and answers:
  GET /img/NAME           the file DIR/NAME (image/jpeg, image/png or application/octet-stream)
  GET /redirect?to=URL    302 to URL
  GET /redirect/N         302 to /redirect/N-1; /redirect/0 is 302 to /img/red.jpg
  GET /hang               reads the request and never answers (the connection stays open)
  GET /status/CODE        an empty answer with that status
Stdlib only; one thread per connection.
"""
import os
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DIR = sys.argv[1]
PORT_FILE = sys.argv[2]
LOG_FILE = sys.argv[3]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep the test output clean
        pass

    def send(self, code, body=b"", ctype="application/octet-stream", headers=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        with open(LOG_FILE, "a") as f:
            f.write(self.path + "\n")
        url = urllib.parse.urlsplit(self.path)
        path = url.path
        if path.startswith("/img/"):
            name = os.path.basename(path[5:])
            p = os.path.join(DIR, name)
            if not os.path.isfile(p):
                return self.send(404)
            ctype = ("image/jpeg" if name.endswith(".jpg") else
                     "image/png" if name.endswith(".png") else "application/octet-stream")
            with open(p, "rb") as f:
                return self.send(200, f.read(), ctype)
        if path == "/redirect":
            to = urllib.parse.parse_qs(url.query).get("to", [""])[0]
            return self.send(302, headers=[("Location", to)])
        if path.startswith("/redirect/"):
            n = int(path.rsplit("/", 1)[1])
            to = "/img/red.jpg" if n <= 0 else f"/redirect/{n - 1}"
            return self.send(302, headers=[("Location", to)])
        if path == "/hang":
            time.sleep(60)
            return None
        if path.startswith("/status/"):
            return self.send(int(path.rsplit("/", 1)[1]))
        return self.send(404)


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
server.daemon_threads = True
with open(PORT_FILE + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(PORT_FILE + ".tmp", PORT_FILE)
server.serve_forever()

#!/usr/bin/env python3
"""The example webhook receiver of deploy/alertmanager/alertmanager.yml (compose service
"webhook"): prints one line per alert of each notification Alertmanager posts, and answers 200.
Standard library only. It stands in for a real integration; it keeps nothing and checks no
credentials, so do not expose it beyond the compose network.

    PORT=5001 python3 deploy/alertmanager/webhook-receiver.py
"""
import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 1 << 20


class Receiver(BaseHTTPRequestHandler):
    def do_POST(self):
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.send_error(413 if length > MAX_BODY else 400)
            return
        try:
            message = json.loads(self.rfile.read(length))
            alerts = message["alerts"]
        except (ValueError, KeyError, TypeError):
            self.send_error(400, "expected an Alertmanager webhook message (JSON with alerts)")
            return
        for alert in alerts:
            labels = alert.get("labels", {})
            annotations = alert.get("annotations", {})
            print(
                json.dumps(
                    {
                        "path": self.path,
                        "receiver": message.get("receiver"),
                        "status": alert.get("status"),
                        "alertname": labels.get("alertname"),
                        "severity": labels.get("severity"),
                        "labels": labels,
                        "summary": annotations.get("summary"),
                        "runbook_url": annotations.get("runbook_url"),
                    },
                    sort_keys=True,
                ),
                flush=True,
            )
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args):  # one line per alert is enough
        pass


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "5001"))
    ThreadingHTTPServer(("", port), Receiver).serve_forever()

#!/usr/bin/env python3
"""An independent webhook receiver for the tests: verifies BetterVideo's
`BV-Signature: t=<unix>,v1=<hex>[,v1=<hex>…]` with Python's own hmac, accepts
any v1 made with the given secret, refuses timestamps older than 5 minutes,
answers 204 or 400, and appends one JSON line per request to OUT.

    receiver.py PORT SECRET OUT
"""
import hashlib
import hmac
import http.server
import json
import sys
import time

PORT, SECRET, OUT = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3]
TOLERANCE = 300


def verify(header, body):
    parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
    t = next((v for k, v in parts if k == "t"), None)
    sigs = [v for k, v in parts if k == "v1"]
    if t is None or not t.isdigit() or abs(time.time() - int(t)) > TOLERANCE:
        return False
    want = hmac.new(SECRET, t.encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(want, s) for s in sigs)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        sig = self.headers.get("BV-Signature", "")
        ok = verify(sig, body)
        with open(OUT, "a") as f:
            f.write(json.dumps({"ok": ok, "signature": sig, "body": body.decode("utf-8", "replace")}) + "\n")
        self.send_response(204 if ok else 400)
        self.end_headers()

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()

#!/usr/bin/python3
"""Checks vigil's Grafana dashboards, statically and against a live Prometheus.

    dashboards.py check ROOT
        The dashboards in ROOT/deploy/grafana/dashboards are what scripts/gen-dashboards.py
        writes; every panel, query and variable uses the datasource uid that
        ROOT/deploy/grafana/provisioning/datasources/*.yml provisions; panel ids are unique and
        panels fit Grafana's 24-column grid; the dashboard provider's folder is where
        deploy/docker-compose.yml mounts the dashboards.

    dashboards.py eval ROOT PROMETHEUS_URL NAME=VALUE...
        Evaluates every variable query and every panel query of every dashboard through
        Prometheus's HTTP API, with the dashboard variables set to the NAME=VALUE pairs given
        ($__rate_interval, $__interval and $__range too). Fails when a query errors or returns no
        series, and when a variable's values do not include the value the test chose. Range panels
        are evaluated as Grafana does, with query_range over the last two minutes.

Exit status 0 when everything passed, 1 otherwise; one line per check on stdout.
"""
import glob
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import yaml


def load_dashboards(root):
    out = []
    for path in sorted(glob.glob(os.path.join(root, "deploy/grafana/dashboards/*.json"))):
        with open(path, encoding="utf-8") as f:
            out.append((os.path.basename(path), json.load(f)))
    if not out:
        raise SystemExit("no dashboards under deploy/grafana/dashboards")
    return out


def panels_of(d):
    """Every panel, rows' nested panels included."""
    for p in d.get("panels", []):
        yield p
        for q in p.get("panels", []):
            yield q


class Checks:
    def __init__(self):
        self.failed = 0
        self.passed = 0

    def ok(self, msg):
        self.passed += 1
        print("ok   " + msg)

    def bad(self, msg):
        self.failed += 1
        print("FAIL " + msg)

    def done(self, what):
        print("%s: %d passed, %d failed" % (what, self.passed, self.failed))
        return 1 if self.failed else 0


def provisioned_uid(root):
    uids = []
    for path in glob.glob(os.path.join(root, "deploy/grafana/provisioning/datasources/*.yml")):
        with open(path, encoding="utf-8") as f:
            for ds in (yaml.safe_load(f) or {}).get("datasources", []):
                if ds.get("type") == "prometheus":
                    uids.append(ds.get("uid"))
    if len(uids) != 1 or not uids[0]:
        raise SystemExit("expected one provisioned Prometheus datasource with a uid, got %r" % uids)
    return uids[0]


def cmd_check(root):
    c = Checks()
    gen = subprocess.run([sys.executable, os.path.join(root, "scripts/gen-dashboards.py"),
                          "--check"], capture_output=True, text=True)
    if gen.returncode == 0:
        c.ok("dashboards match scripts/gen-dashboards.py")
    else:
        c.bad("dashboards are stale: " + gen.stderr.strip())
    uid = provisioned_uid(root)
    for name, d in load_dashboards(root):
        ids = [p.get("id") for p in panels_of(d)]
        if len(ids) == len(set(ids)) and None not in ids:
            c.ok("%s: %d panels, unique ids" % (name, len(ids)))
        else:
            c.bad("%s: panel ids missing or repeated: %r" % (name, ids))
        for p in panels_of(d):
            where = "%s / %s" % (name, p.get("title"))
            g = p.get("gridPos", {})
            if not (0 <= g.get("x", -1) and g.get("w", 0) > 0 and g["x"] + g["w"] <= 24):
                c.bad("%s: gridPos %r does not fit 24 columns" % (where, g))
            if p.get("type") == "row":
                continue
            uids = [p.get("datasource", {}).get("uid")]
            uids += [t.get("datasource", {}).get("uid") for t in p.get("targets", [])]
            if not p.get("targets"):
                c.bad("%s: no query" % where)
            elif all(u == uid for u in uids):
                c.ok("%s: %d queries on datasource %s" % (where, len(p["targets"]), uid))
            else:
                c.bad("%s: datasource uids %r, expected %s" % (where, uids, uid))
            if not p.get("description"):
                c.bad("%s: no description" % where)
        for v in d.get("templating", {}).get("list", []):
            u = v.get("datasource", {}).get("uid")
            if v.get("type") == "query" and u != uid:
                c.bad("%s: variable %s uses datasource %r" % (name, v.get("name"), u))
    # The provider reads the folder compose mounts the dashboards into.
    with open(os.path.join(root, "deploy/grafana/provisioning/dashboards/vigil.yml")) as f:
        folder = yaml.safe_load(f)["providers"][0]["options"]["path"]
    compose = os.path.join(root, "deploy/docker-compose.yml")
    if os.path.exists(compose):
        with open(compose, encoding="utf-8") as f:
            grafana = yaml.safe_load(f)["services"]["grafana"]
        mounts = [str(m) if isinstance(m, str) else "%s:%s" % (m.get("source"), m.get("target"))
                  for m in grafana.get("volumes", [])]
        if any(m.split(":")[1] == folder and m.split(":")[0].rstrip("/").endswith(
                "grafana/dashboards") for m in mounts if m.count(":") >= 1):
            c.ok("compose mounts deploy/grafana/dashboards at the provider's folder %s" % folder)
        else:
            c.bad("compose's grafana volumes %r do not mount the dashboards at %s" % (mounts, folder))
    else:
        c.bad("deploy/docker-compose.yml is missing")
    return c.done("dashboards check")


VAR = re.compile(r"\$(\w+)|\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]")


def substitute(expr, values):
    def one(m):
        name = m.group(1) or m.group(2) or m.group(3)
        if name not in values:
            raise KeyError(name)
        return values[name]
    return VAR.sub(one, expr)


def api(base, path, params, method="POST"):
    url = base.rstrip("/") + path
    data = urllib.parse.urlencode(params, doseq=True)
    if method == "GET":
        req = urllib.request.Request(url + ("?" + data if data else ""))
    else:
        req = urllib.request.Request(url, data=data.encode())
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        try:
            return json.load(e)
        except ValueError:
            return {"status": "error", "error": "HTTP %d" % e.code}


LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(.*),\s*)?(\w+)\s*\)\s*$")


def variable_values(base, query):
    m = LABEL_VALUES.match(query)
    if not m:
        raise ValueError("unsupported variable query %r" % query)
    selector, label = m.group(1), m.group(2)
    params = {"match[]": [selector]} if selector else {}
    r = api(base, "/api/v1/label/%s/values" % label, params, "GET")
    if r.get("status") != "success":
        raise ValueError(r.get("error", "error"))
    return r["data"]


def cmd_eval(root, base, pairs):
    c = Checks()
    values = dict(p.split("=", 1) for p in pairs)
    for name, d in load_dashboards(root):
        for v in d.get("templating", {}).get("list", []):
            if v.get("type") != "query":
                continue
            q = substitute(v["query"]["query"], values)
            try:
                got = variable_values(base, q)
            except ValueError as e:
                c.bad("%s: variable $%s: %s: %s" % (name, v["name"], q, e))
                continue
            want = values.get(v["name"])
            if got and (want in got or (v.get("includeAll") and want == v.get("allValue"))):
                c.ok("%s: variable $%s = %s (values %s)" % (name, v["name"], want, got))
            else:
                c.bad("%s: variable $%s: %s gave %r, expected it to include %r"
                      % (name, v["name"], q, got, want))
        for p in panels_of(d):
            for t in p.get("targets", []):
                where = "%s / %s / %s" % (name, p.get("title"), t.get("refId"))
                try:
                    expr = substitute(t["expr"], values)
                except KeyError as e:
                    c.bad("%s: no value for variable %s" % (where, e))
                    continue
                now = time.time()
                if t.get("instant"):
                    r = api(base, "/api/v1/query", {"query": expr, "time": now})
                else:
                    r = api(base, "/api/v1/query_range",
                            {"query": expr, "start": now - 120, "end": now, "step": 5})
                if r.get("status") != "success":
                    c.bad("%s: %s: %s" % (where, r.get("error"), expr))
                elif not r["data"]["result"]:
                    c.bad("%s: no series: %s" % (where, expr))
                else:
                    c.ok("%s: %d series" % (where, len(r["data"]["result"])))
    return c.done("dashboards eval")


def main(argv):
    if len(argv) >= 2 and argv[0] == "check":
        return cmd_check(argv[1])
    if len(argv) >= 3 and argv[0] == "eval":
        return cmd_eval(argv[1], argv[2], argv[3:])
    raise SystemExit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

#!/usr/bin/python3
"""Writes vigil's Grafana dashboards (deploy/grafana/dashboards/*.json) from the panel lists below,
and the list of panels with their PromQL in docs/monitoring.md (between the panel markers).

The JSON files are generated so that every panel gets the same datasource, legend and layout
conventions and so that the PromQL lives in one readable place; edit this file, run it, commit
them. `tests/stack/dashboards.py check` fails when the committed files differ from what this
script writes, and the stack test (`tests/stack/test_stack.sh`) evaluates every panel's query
against a real Prometheus.

    /usr/bin/python3 scripts/gen-dashboards.py            # rewrite the dashboards
    /usr/bin/python3 scripts/gen-dashboards.py --check    # exit 1 if they are stale

Query conventions (docs/monitoring.md, "Dashboards"):
- every selector carries the dashboard filters ($job, $instance; $model and $version on the
  per-model dashboard), written once below as SEL / MSEL;
- rates use $__rate_interval, which Grafana sizes to at least four scrape intervals;
- a ratio whose numerator may have no series yet (no 5xx answered so far) is written
  `(num or denominator * 0) / denominator`, so the panel shows 0 instead of "No data".
"""
import json
import os
import sys

DATASOURCE = {"type": "prometheus", "uid": "vigil-prometheus"}
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "deploy", "grafana", "dashboards")

SEL = 'job=~"$job", instance=~"$instance"'
MSEL = SEL + ', model="$model", version=~"$version"'
RI = "[$__rate_interval]"


def rate(metric, sel, by=None, extra=""):
    """sum [by (...)] (rate(metric{sel, extra}[$__rate_interval]))"""
    labels = sel + (", " + extra if extra else "")
    group = " by (%s)" % by if by else ""
    return "sum%s (rate(%s{%s}%s))" % (group, metric, labels, RI)


def share(metric, sel, by, numerator_filter, percent=True):
    """Share of `metric` matching numerator_filter, per `by`, 0 when nothing matched yet."""
    num = rate(metric, sel, by, numerator_filter)
    den = rate(metric, sel, by)
    scale = "100 * " if percent else ""
    return "%s(%s or %s * 0) / %s" % (scale, num, den, den)


def quantile(q, metric, sel, by=None):
    group = "le" if not by else by + ", le"
    return "histogram_quantile(%s, %s)" % (q, rate(metric + "_bucket", sel, group))


def target(expr, legend="", ref="A", fmt=None, instant=False):
    t = {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": ref}
    if fmt:
        t["format"] = fmt
    if instant:
        t["instant"] = True
        t["range"] = False
    return t


def targets(*specs, **kw):
    """targets((expr, legend), ...): refIds A, B, C... in order."""
    return [target(e, l, chr(ord("A") + i), **kw) for i, (e, l) in enumerate(specs)]


class Layout:
    """Places panels left to right on Grafana's 24-column grid, wrapping rows."""

    def __init__(self):
        self.x = 0
        self.y = 0
        self.row_h = 0
        self.next_id = 1

    def place(self, panel, w, h):
        if self.x + w > 24:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        panel["gridPos"] = {"h": h, "w": w, "x": self.x, "y": self.y}
        panel["id"] = self.next_id
        self.next_id += 1
        self.x += w
        self.row_h = max(self.row_h, h)
        return panel

    def row(self, title):
        if self.x:
            self.x, self.y, self.row_h = 0, self.y + self.row_h, 0
        panel = {"type": "row", "title": title, "collapsed": False, "panels": []}
        self.place(panel, 24, 1)
        self.x, self.y, self.row_h = 0, self.y + 1, 0
        return panel


def timeseries(title, description, tgts, unit="short", stack=False, minimum=None,
               thresholds=None):
    defaults = {"unit": unit, "custom": {"fillOpacity": 10, "lineWidth": 1, "showPoints": "never"}}
    if thresholds:
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": c, "value": v} for v, c in thresholds],
        }
        defaults["custom"]["thresholdsStyle"] = {"mode": "dashed"}
    if stack:
        defaults["custom"]["stacking"] = {"mode": "normal", "group": "A"}
    if minimum is not None:
        defaults["min"] = minimum
    return {
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": tgts,
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {
            "legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max"]},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


def stat(title, description, expr, unit="short", decimals=None, thresholds=None):
    defaults = {"unit": unit}
    if decimals is not None:
        defaults["decimals"] = decimals
    if thresholds:
        defaults["thresholds"] = {
            "mode": "absolute",
            "steps": [{"color": c, "value": v} for v, c in thresholds],
        }
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [target(expr, "", "A", instant=True)],
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "colorMode": "value", "graphMode": "area", "textMode": "auto"},
    }


def table(title, description, tgts):
    return {
        "type": "table",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": tgts,
        "fieldConfig": {"defaults": {}, "overrides": []},
        "transformations": [
            {"id": "merge", "options": {}},
            {"id": "organize", "options": {"excludeByName": {"Time": True, "__name__": True}}},
        ],
        "options": {"showHeader": True},
    }


def heatmap(title, description, expr):
    return {
        "type": "heatmap",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": [target(expr, "{{le}}", "A", fmt="heatmap")],
        "fieldConfig": {"defaults": {}, "overrides": []},
        "options": {
            "calculate": False,
            "cellGap": 1,
            "color": {"mode": "scheme", "scheme": "Oranges", "steps": 64},
            "yAxis": {"unit": "s"},
            "tooltip": {"show": True, "yHistogram": True},
        },
    }


def query_var(name, label, query, multi=False, include_all=False, all_value=None):
    v = {
        "type": "query",
        "name": name,
        "label": label,
        "datasource": DATASOURCE,
        "definition": query,
        "query": {"query": query, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        "refresh": 2,
        "sort": 1,
        "multi": multi,
        "includeAll": include_all,
        "current": {},
        "options": [],
        "hide": 0,
    }
    if all_value is not None:
        v["allValue"] = all_value
    return v


def common_vars():
    return [
        query_var("job", "Job", "label_values(vigil_build_info, job)"),
        query_var("instance", "Instance", 'label_values(vigil_build_info{job=~"$job"}, instance)',
                  multi=True, include_all=True, all_value=".*"),
    ]


def dashboard(uid, title, description, panels, variables, tags):
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": tags,
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": variables},
        "annotations": {"list": []},
        "links": [{"type": "dashboards", "tags": ["vigil"], "asDropdown": True,
                   "title": "vigil dashboards", "includeVars": True, "keepTime": True}],
        "panels": panels,
    }


def overview():
    L = Layout()
    p = []
    api = 'route!="/metrics"'
    p.append(L.row("Service"))
    p.append(L.place(stat(
        "Request rate", "Requests answered per second, all routes but /metrics.",
        rate("vigil_http_requests_total", SEL, extra=api), "reqps", 1), 4, 4))
    p.append(L.place(stat(
        "5xx errors", "Share of requests (all routes but /metrics) answered with a 5xx status.",
        share("vigil_http_requests_total", SEL + ", " + api, None, 'code=~"5.."'), "percent", 2,
        [(None, "green"), (0.1, "orange"), (1, "red")]), 4, 4))
    p.append(L.place(stat(
        "p99 latency", "99th percentile of request duration over all routes but /metrics.",
        quantile(0.99, "vigil_http_request_duration_seconds", SEL + ", " + api), "s"), 4, 4))
    p.append(L.place(stat(
        "Instances up", "vigil instances Prometheus scraped successfully (up == 1).",
        'sum(up{%s})' % SEL, "short", 0), 4, 4))
    p.append(L.place(stat(
        "Models loaded", "Model versions serving (vigil_model_loaded == 1), summed over instances.",
        'count(vigil_model_loaded{%s} == 1) or vector(0)' % SEL, "short", 0), 4, 4))
    p.append(L.place(stat(
        "Models failed", "Model versions that failed to load (vigil_model_loaded == 0): see the "
        "VigilModelLoadFailed runbook.",
        'count(vigil_model_loaded{%s} == 0) or vector(0)' % SEL, "short", 0,
        [(None, "green"), (1, "red")]), 4, 4))

    p.append(L.row("Requests per route"))
    p.append(L.place(timeseries(
        "Request rate by route", "Requests answered per second, per route template.",
        targets((rate("vigil_http_requests_total", SEL, "route"), "{{route}}")), "reqps"), 12, 8))
    p.append(L.place(timeseries(
        "Error percentage by route",
        "Share of each route's requests answered with 5xx (server errors) and 4xx (client errors).",
        targets((share("vigil_http_requests_total", SEL, "route", 'code=~"5.."'), "{{route}} 5xx"),
                (share("vigil_http_requests_total", SEL, "route", 'code=~"4.."'), "{{route}} 4xx")),
        "percent", minimum=0), 12, 8))
    p.append(L.place(timeseries(
        "Latency by route (p50, p95, p99)",
        "Request duration quantiles per route, from the vigil_http_request_duration_seconds "
        "histogram summed over instances.",
        targets((quantile(0.5, "vigil_http_request_duration_seconds", SEL, "route"), "{{route}} p50"),
                (quantile(0.95, "vigil_http_request_duration_seconds", SEL, "route"), "{{route}} p95"),
                (quantile(0.99, "vigil_http_request_duration_seconds", SEL, "route"), "{{route}} p99")),
        "s"), 12, 8))
    p.append(L.place(timeseries(
        "Responses by status code", "Requests answered per second, per HTTP status code.",
        targets((rate("vigil_http_requests_total", SEL, "code"), "{{code}}")), "reqps",
        stack=True), 12, 8))
    p.append(L.place(timeseries(
        "Request and response size (p95)", "95th percentile of body sizes per route.",
        targets((quantile(0.95, "vigil_http_request_size_bytes", SEL, "route"), "{{route}} request"),
                (quantile(0.95, "vigil_http_response_size_bytes", SEL, "route"), "{{route}} response")),
        "bytes"), 12, 8))
    p.append(L.place(timeseries(
        "In-flight requests", "Requests being received or processed, per instance.",
        targets(("sum by (instance) (vigil_http_requests_in_flight{%s})" % SEL, "{{instance}}")),
        "short", minimum=0), 12, 8))

    p.append(L.row("Process"))
    p.append(L.place(timeseries(
        "CPU", "CPU time used per second (1 = one core busy), per instance.",
        targets(("sum by (instance) (rate(process_cpu_seconds_total{%s}%s))" % (SEL, RI),
                 "{{instance}}")), "short", minimum=0), 8, 8))
    p.append(L.place(timeseries(
        "Memory", "Resident set size per instance.",
        targets(("sum by (instance) (process_resident_memory_bytes{%s})" % SEL, "{{instance}}")),
        "bytes", minimum=0), 8, 8))
    p.append(L.place(timeseries(
        "Open file descriptors", "Open file descriptors as a share of the limit, per instance.",
        targets(("100 * sum by (instance) (process_open_fds{%s}) / sum by (instance) "
                 "(process_max_fds{%s})" % (SEL, SEL), "{{instance}}")), "percent", minimum=0),
        8, 8))

    p.append(L.row("Models"))
    p.append(L.place(table(
        "Model versions", "Every model version each instance knows: loaded (1) or failed (0), "
        "load time and when it was loaded.",
        targets(("max by (instance, model, version) (vigil_model_loaded{%s})" % SEL, ""),
                ("max by (instance, model, version) (vigil_model_load_duration_seconds{%s})" % SEL,
                 ""),
                ("max by (instance, model, version) (vigil_model_load_timestamp_seconds{%s}) * 1000"
                 % SEL, ""),
                fmt="table", instant=True)), 16, 8))
    p.append(L.place(timeseries(
        "Prediction requests by model", "Prediction requests per second per model version.",
        targets((rate("vigil_model_requests_total", SEL, "model, version"),
                 "{{model}} v{{version}}")), "reqps"), 8, 8))
    return dashboard("vigil-overview", "vigil overview",
                     "Traffic, errors and latency per route; process resources; model versions.",
                     p, common_vars(), ["vigil"])


def model():
    L = Layout()
    p = []
    p.append(L.row("Predictions"))
    p.append(L.place(stat(
        "Prediction rate", "Prediction requests per second (all outcomes).",
        rate("vigil_model_requests_total", MSEL), "reqps", 1), 6, 4))
    p.append(L.place(stat(
        "Failed predictions", "Share of prediction requests not answered with a prediction "
        "(bad input or internal error).",
        share("vigil_model_requests_total", MSEL, None, 'outcome!="success"'), "percent", 2,
        [(None, "green"), (1, "orange"), (5, "red")]), 6, 4))
    p.append(L.place(stat(
        "Holdout accuracy", "Accuracy on the held-out rows at training time (config.json).",
        "max(vigil_model_holdout_accuracy{%s})" % MSEL, "percentunit", 1), 6, 4))
    p.append(L.place(stat(
        "Rows per request", "Rows predicted per successful request (batches raise it above 1).",
        "%s / %s" % (rate("vigil_model_rows_total", MSEL),
                     rate("vigil_model_requests_total", MSEL, extra='outcome="success"')),
        "short", 2), 6, 4))
    p.append(L.place(timeseries(
        "Predictions per second by class", "Predicted rows per second, per predicted class.",
        targets((rate("vigil_model_predictions_total", MSEL, "class"), "{{class}}")), "reqps",
        stack=True), 12, 8))
    p.append(L.place(timeseries(
        "Predicted class share", "Share of predicted rows per class: a shift here is prediction "
        "drift, compare with the training class distribution.",
        targets(("100 * %s / ignoring(class) group_left %s"
                 % (rate("vigil_model_predictions_total", MSEL, "class"),
                    rate("vigil_model_predictions_total", MSEL)), "{{class}}")),
        "percent", minimum=0), 12, 8))
    p.append(L.place(timeseries(
        "Requests by outcome", "Prediction requests per second: success, bad_input (the client "
        "sent something the model cannot take), internal (a server-side failure).",
        targets((rate("vigil_model_requests_total", MSEL, "outcome"), "{{outcome}}")), "reqps",
        stack=True), 12, 8))
    p.append(L.place(timeseries(
        "Rows per request", "Rows predicted per successful request.",
        targets(("%s / %s" % (rate("vigil_model_rows_total", MSEL, "version"),
                              rate("vigil_model_requests_total", MSEL, "version",
                                   'outcome="success"')), "v{{version}}")), "short", minimum=0),
        12, 8))

    p.append(L.row("Inference latency"))
    p.append(L.place(heatmap(
        "Inference latency heatmap", "Engine time per request, from the "
        "vigil_model_inference_duration_seconds buckets.",
        rate("vigil_model_inference_duration_seconds_bucket", MSEL, "le")), 12, 9))
    p.append(L.place(timeseries(
        "Inference latency (p50, p95, p99)", "Engine time quantiles (excludes HTTP and JSON).",
        targets((quantile(0.5, "vigil_model_inference_duration_seconds", MSEL, "version"),
                 "v{{version}} p50"),
                (quantile(0.95, "vigil_model_inference_duration_seconds", MSEL, "version"),
                 "v{{version}} p95"),
                (quantile(0.99, "vigil_model_inference_duration_seconds", MSEL, "version"),
                 "v{{version}} p99")), "s"), 12, 9))

    p.append(L.row("Drift"))
    p.append(L.place(timeseries(
        "PSI per feature", "Population stability index of each feature's values over the "
        "server's drift window against the training reference: under 0.1 stable, 0.1 to 0.25 "
        "moderate shift (warning), above 0.25 significant (critical).",
        targets(("max by (feature) (vigil_feature_psi{%s})" % MSEL, "{{feature}}")),
        "short", minimum=0, thresholds=[(None, "green"), (0.1, "orange"), (0.25, "red")]), 12, 8))
    p.append(L.place(timeseries(
        "Prediction drift (PSI)", "PSI of the predicted classes over the drift window against the "
        "training class distribution; rows in the window on the right axis of the legend.",
        targets(("max by (version) (vigil_prediction_psi{%s})" % MSEL, "v{{version}} PSI"),
                ("sum by (version) (vigil_drift_window_rows{%s})" % MSEL,
                 "v{{version}} rows in window")),
        "short", minimum=0, thresholds=[(None, "green"), (0.1, "orange"), (0.25, "red")]), 12, 8))
    p.append(L.place(timeseries(
        "Out of training range", "Share of each feature's served values below or above the "
        "training minimum and maximum.",
        targets(("100 * %s / ignoring(side) group_left %s"
                 % (rate("vigil_feature_out_of_range_total", MSEL, "feature, side"),
                    rate("vigil_feature_values_total", MSEL, "feature")),
                 "{{feature}} {{side}}")), "percent", minimum=0), 12, 8))
    p.append(L.place(timeseries(
        "Missing values", "Share of each feature's values that were missing or NaN.",
        targets(("100 * %s / %s" % (rate("vigil_feature_missing_total", MSEL, "feature"),
                                    rate("vigil_feature_values_total", MSEL, "feature")),
                 "{{feature}}")), "percent", minimum=0), 12, 8))

    p.append(L.row("Quality"))
    p.append(L.place(timeseries(
        "Live against holdout accuracy", "Accuracy over the last feedbacks (the server's rolling "
        "gauge, per instance), the accuracy of the feedback of the last hour over all instances, "
        "and the holdout accuracy measured at training time.",
        targets(("max by (instance, version) (vigil_live_accuracy{%s})" % MSEL,
                 "v{{version}} live {{instance}}"),
                ("sum by (version) (rate(vigil_feedback_total{%s, outcome=\"correct\"}[1h])) / "
                 "sum by (version) (rate(vigil_feedback_total{%s, outcome=~\"correct|incorrect\"}[1h]))"
                 % (MSEL, MSEL), "v{{version}} last hour"),
                ("max by (version) (vigil_model_holdout_accuracy{%s})" % MSEL,
                 "v{{version}} holdout")), "percentunit"), 12, 8))
    p.append(L.place(timeseries(
        "Feedback", "Ground-truth feedback received per second, by outcome, and feedback refused "
        "by reason (unknown or evicted ids, duplicates, invalid labels).",
        targets((rate("vigil_feedback_total", MSEL, "outcome"), "{{outcome}}"),
                ("sum by (reason) (rate(vigil_feedback_rejected_total{%s}%s))" % (SEL, RI),
                 "refused: {{reason}}")), "reqps", minimum=0), 12, 8))
    p.append(L.place(table(
        "Version", "The version serving: content hash, load time and holdout accuracy.",
        targets(("max by (instance, version, sha256) (vigil_model_info{%s})" % MSEL, ""),
                ("max by (instance, version) (vigil_model_load_duration_seconds{%s})" % MSEL, ""),
                ("max by (instance, version) (vigil_model_holdout_accuracy{%s})" % MSEL, ""),
                fmt="table", instant=True)), 12, 8))
    variables = common_vars() + [
        query_var("model", "Model", 'label_values(vigil_model_info{job=~"$job"}, model)'),
        query_var("version", "Version",
                  'label_values(vigil_model_info{job=~"$job", model="$model"}, version)',
                  multi=True, include_all=True, all_value=".*"),
    ]
    return dashboard("vigil-model", "vigil model",
                     "One model: predictions by class, inference latency, quality.",
                     p, variables, ["vigil"])


def render(d):
    return json.dumps(d, indent=2, sort_keys=False) + "\n"


DOC = os.path.join(ROOT, "docs", "monitoring.md")
DOC_BEGIN = "<!-- panels:begin (written by scripts/gen-dashboards.py) -->\n"
DOC_END = "<!-- panels:end -->\n"


def panel_doc(dashboards):
    """The Markdown list of every panel and its PromQL, for docs/monitoring.md."""
    out = [DOC_BEGIN]
    for d in dashboards:
        out.append("\n#### %s (`%s`)\n\n" % (d["title"], d["uid"]))
        out.append("Variables: %s.\n\n" % ", ".join(
            "`$%s` = `%s`" % (v["name"], v["query"]["query"]) for v in d["templating"]["list"]))
        for p in d["panels"]:
            if p["type"] == "row":
                out.append("\n**%s**\n\n" % p["title"])
                continue
            out.append("- *%s* (%s): %s\n" % (p["title"], p["type"], p["description"]))
            for t in p["targets"]:
                out.append("  ```promql\n  %s\n  ```\n" % t["expr"])
        out.append("\n")
    out.append(DOC_END)
    return "".join(out)


def with_panel_doc(text, section):
    begin, end = text.find(DOC_BEGIN), text.find(DOC_END)
    if begin < 0 or end < begin:
        raise SystemExit("docs/monitoring.md lacks the panel markers %r ... %r"
                         % (DOC_BEGIN.strip(), DOC_END.strip()))
    return text[:begin] + section + text[end + len(DOC_END):]


def main():
    check = "--check" in sys.argv[1:]
    stale = []
    boards = (("vigil-overview.json", overview()), ("vigil-model.json", model()))
    with open(DOC, encoding="utf-8") as f:
        doc = with_panel_doc(f.read(), panel_doc([d for _, d in boards]))
    for path, text in [(os.path.join(OUT_DIR, n), render(d)) for n, d in boards] + [(DOC, doc)]:
        if check:
            try:
                with open(path, encoding="utf-8") as f:
                    if f.read() != text:
                        stale.append(path)
            except FileNotFoundError:
                stale.append(path)
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
        print("wrote", os.path.relpath(path, ROOT))
    if stale:
        for s in stale:
            print("stale: %s (run /usr/bin/python3 scripts/gen-dashboards.py)" % s, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

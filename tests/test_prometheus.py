"""Prometheus and Grafana (#12): a real Prometheus (Debian's package) scrapes real agents and a
real monitor and answers PromQL over them, promtool passes every /metrics, deploy/prometheus.yml
and every query of the Grafana dashboard (deploy/grafana/bzzz.json), and the dashboard covers
every series the agents and the monitor (docs/monitor-api.md) expose."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx
import pytest
import yaml

from bzzz.devhub import DevHubThread
from bzzz.testing import agents
from bzzz.testing.agents import free_port
from bzzz.testing.wait import wait_for

from .conftest import require

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DASHBOARD = DEPLOY / "grafana" / "bzzz.json"
PROM_CONFIG = DEPLOY / "prometheus.yml"
MONITOR_DOC = ROOT / "docs" / "monitor-api.md"
DS_REF = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
AGENT_JOB, MONITOR_JOB = "bzzz-agent", "bzzz-monitor"
# What Grafana puts in for its built-in interval variables when a query runs.
GRAFANA_INTERVALS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h",
                     "__range_s": "3600", "__interval_ms": "15000"}
PEER_ID = re.compile(r"^(12D3KooW|Qm)[1-9A-HJ-NP-Za-km-z]{40,}$")

SEED = {"users": [{"login": "owner", "token": "t-owner"}, {"login": "bot", "token": "t-bot"}],
        "repos": [{"full_name": "owner/tasks", "push": ["bot"]}]}


def promtool() -> str:
    tool = shutil.which("promtool")
    require(tool is not None, "promtool is not installed (apt-get install prometheus)")
    return tool


def prometheus_binary() -> str:
    tool = shutil.which("prometheus")
    require(tool is not None, "prometheus is not installed (apt-get install prometheus)")
    return tool


# ---------------------------------------------------------------- the dashboard, offline

def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def all_panels(dash: dict):
    for panel in dash["panels"]:
        yield panel
        yield from panel.get("panels", [])  # a collapsed row keeps its panels inside


def queries(dash: dict) -> list[tuple[str, str]]:
    """(where, expr) of every query: panels' targets and query variables."""
    out = []
    for panel in all_panels(dash):
        for t in panel.get("targets", []):
            out.append((f"panel {panel['id']} {panel['title']!r} {t['refId']}", t["expr"]))
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            q = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", q)
            # label_values(selector, label) is Grafana's, not PromQL: its selector must parse
            out.append((f"variable {var['name']}", m.group(1) if m else q))
    return out


def concrete(expr: str, variables: set[str], value: str = ".*") -> str:
    """``expr`` as Grafana sends it: built-in intervals and template variables filled in; an
    unknown variable is an error (a typo would otherwise reach Prometheus as text)."""
    def fill(m: re.Match) -> str:
        name = m.group(1) or m.group(2)
        if name in GRAFANA_INTERVALS:
            return GRAFANA_INTERVALS[name]
        if name in variables:
            return value
        raise ValueError(f"unknown variable ${name} in {expr!r}")
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", fill, expr)


def variable_names(dash: dict) -> set[str]:
    return {v["name"] for v in dash["templating"]["list"]}


def uses(name: str, exprs: list[str]) -> bool:
    pattern = re.compile(rf"\b{re.escape(name)}(_bucket|_sum|_count)?\b")
    return any(pattern.search(e) for e in exprs)


def documented_monitor_series() -> list[str]:
    """Every series in the "Metrics" table of docs/monitor-api.md."""
    text = MONITOR_DOC.read_text()
    section = text.split("## Metrics", 1)[1]
    return re.findall(r"^\| `(bzzz_\w+)", section, re.M)


def test_dashboard_is_provisionable_with_a_datasource_variable():
    dash = dashboard()
    assert "__inputs" not in dash and "__requires" not in dash  # only the import dialog fills them
    assert dash["uid"] and dash["title"] and dash["schemaVersion"] >= 36
    ds = [v for v in dash["templating"]["list"] if v["type"] == "datasource"]
    assert [(v["name"], v["query"]) for v in ds] == [("DS_PROMETHEUS", "prometheus")]
    ids = [p["id"] for p in all_panels(dash)]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    cells: set[tuple[int, int]] = set()
    for panel in all_panels(dash):
        g = panel["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, f"panel {panel['title']!r} overlaps another"
        cells |= mine
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == DS_REF, panel["title"]
        assert panel["targets"], panel["title"]
        for t in panel["targets"]:
            assert t["datasource"] == DS_REF, panel["title"]
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            assert var["datasource"] == DS_REF, var["name"]
    # a per-node variable from the agents' info series, and the agent panels filter on it
    node = next(v for v in dash["templating"]["list"] if v["name"] == "node")
    assert node["query"]["query"] == "label_values(bzzz_info, node_id)"
    assert sum('node_id=~"$node"' in e for _, e in queries(dash)) >= 15


def test_every_dashboard_query_parses_with_promtool(tmp_path):
    tool = promtool()
    dash = dashboard()
    variables = variable_names(dash)
    rules = [{"record": f"dashboard:query_{i}", "expr": concrete(expr, variables)}
             for i, (_, expr) in enumerate(queries(dash))]
    assert len(rules) >= 30
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    r = subprocess.run([tool, "check", "rules", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(rules)} rules found" in r.stdout + r.stderr


def test_the_query_check_can_fail(tmp_path):
    tool = promtool()
    with pytest.raises(ValueError, match=r"\$nod"):
        concrete('bzzz_peers{node_id=~"$nod"}', {"node"})
    assert concrete('rate(x{n=~"${node}"}[$__rate_interval])', {"node"}, "a|b") == \
        'rate(x{n=~"a|b"}[1m])'
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [
        {"record": "dashboard:bad", "expr": "sum by (le (rate(x[1m]))"}]}]}))
    r = subprocess.run([tool, "check", "rules", str(path)], capture_output=True, text=True)
    assert r.returncode != 0


def test_every_monitor_series_in_the_docs_is_on_the_dashboard():
    documented = documented_monitor_series()
    mesh = [s for s in documented if s.startswith("bzzz_mesh_")]
    assert len(mesh) >= 9 and "bzzz_monitor_info" in documented
    exprs = [e for _, e in queries(dashboard())]
    missing = [s for s in documented if not uses(s, exprs)]
    assert not missing, f"documented monitor series the dashboard does not show: {missing}"


def test_prometheus_config_passes_promtool_and_matches_the_stack():
    tool = promtool()
    r = subprocess.run([tool, "check", "config", str(PROM_CONFIG)], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    config = yaml.safe_load(PROM_CONFIG.read_text())
    jobs = {j["job_name"]: j for j in config["scrape_configs"]}
    assert set(jobs) == {AGENT_JOB, MONITOR_JOB}
    for job, service, port in ((AGENT_JOB, "agent", 8090), (MONITOR_JOB, "monitor", 8091)):
        (sd,) = jobs[job]["dns_sd_configs"]
        assert sd["names"] == [f"tasks.{service}"] and sd["type"] == "A" and sd["port"] == port
        assert jobs[job].get("metrics_path", "/metrics") == "/metrics"
    # the stack's agent serves its API (and /metrics) on the port Prometheus scrapes
    stack = yaml.safe_load((DEPLOY / "swarm-stack.yml").read_text())
    assert stack["services"]["agent"]["environment"]["BZZZ_API_LISTEN"].endswith(":8090")
    if "monitor" in stack["services"]:  # and the monitor on the one its job scrapes
        env = stack["services"]["monitor"]["environment"]
        assert env.get("BZZZ_MONITOR__LISTEN", "127.0.0.1:8091").endswith(":8091")
    # the dashboard's job selectors name these jobs
    for _, expr in queries(dashboard()):
        for job in re.findall(r'job="([^"]+)"', expr):
            assert job in jobs, f"the dashboard selects job {job!r}, not in prometheus.yml"


def test_the_host_network_alternative_passes_promtool(tmp_path):
    """The commented bzzz-agent job for agents on the host network, swapped in, is valid."""
    tool = promtool()
    text = PROM_CONFIG.read_text()
    block = re.search(r"# HOST-NETWORK begin\n(.*?)\n *# HOST-NETWORK end", text, re.S).group(1)
    job = yaml.safe_load("\n".join(re.sub(r"^( *)# ?", r"\1", line)
                                   for line in block.splitlines()))
    config = yaml.safe_load(text)
    config["scrape_configs"] = [j for j in config["scrape_configs"]
                                if j["job_name"] != AGENT_JOB] + job
    assert job[0]["job_name"] == AGENT_JOB
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    r = subprocess.run([tool, "check", "config", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_grafana_provisioning_points_at_the_dashboard_and_a_prometheus():
    prov = DEPLOY / "grafana" / "provisioning"
    (source,) = yaml.safe_load((prov / "datasources" / "prometheus.yml").read_text())[
        "datasources"]
    assert source["type"] == "prometheus" and source["isDefault"] is True
    assert source["url"].startswith("http")
    (provider,) = yaml.safe_load((prov / "dashboards" / "bzzz.yml").read_text())["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")
    # the mount the file's comment tells operators to use lands in the provider's path
    comment = (prov / "dashboards" / "bzzz.yml").read_text()
    assert f"bzzz.json:{provider['options']['path']}/bzzz.json" in comment


# ---------------------------------------------------------------- real agents, real Prometheus

def series_types(text: str) -> dict[str, str]:
    """name -> type of every family on a /metrics page (``_created`` companions left out)."""
    found = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))
    return {n: t for n, t in found.items() if not n.endswith("_created")}


def label_problems(text: str) -> list[str]:
    """Peer ids or issue numbers as label values outside an ``_info`` series."""
    from prometheus_client.parser import text_string_to_metric_families
    problems = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_info"):
                continue
            for label, value in sample.labels.items():
                if PEER_ID.match(value) or label in ("issue", "peer_id", "peer"):
                    problems.append(f"{sample.name}{{{label}={value!r}}}")
    return problems


AGENT_NAMES = ("alpha", "beta")


class Prometheus:
    """Debian's prometheus on a free loopback port, its config derived from
    deploy/prometheus.yml: the same jobs and scrape settings, every second instead of every
    15 s, and file discovery instead of Swarm DNS (the test sets each job's targets with
    ``set_targets``); its storage in ``root``. Prometheus applies discovered targets every
    5 s, the first time 5 s after it starts: start it early."""

    def __init__(self, root: Path, jobs: tuple[str, ...] = (AGENT_JOB, MONITOR_JOB)):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        config = yaml.safe_load(PROM_CONFIG.read_text())
        config["global"].update(scrape_interval="1s", scrape_timeout="1s",
                                evaluation_interval="1s")
        scrape = []
        for job in config["scrape_configs"]:
            if job["job_name"] not in jobs:
                continue
            job = {k: v for k, v in job.items() if not k.endswith("_sd_configs")}
            job["file_sd_configs"] = [{"files": [str(self._targets(job["job_name"]))],
                                       "refresh_interval": "1s"}]
            self.set_targets(job["job_name"], [])
            scrape.append(job)
        config["scrape_configs"] = scrape
        self.config = root / "prometheus.yml"
        self.config.write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = root / "prometheus.log"

    def _targets(self, job: str) -> Path:
        return self.root / f"targets-{job}.json"

    def set_targets(self, job: str, targets: list[str]) -> None:
        tmp = self._targets(job).with_suffix(".tmp")
        tmp.write_text(json.dumps([{"targets": targets}] if targets else []))
        tmp.replace(self._targets(job))

    def __enter__(self):
        self.proc = subprocess.Popen(
            [prometheus_binary(), f"--config.file={self.config}",
             f"--storage.tsdb.path={self.root / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=open(self.log, "ab"), stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: self.proc.poll() is not None
                     or httpx.get(self.url + "/-/ready").status_code == 200, 30,
                     what="prometheus ready")
            assert self.proc.poll() is None, self.log.read_text()[-2000:]
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def query(self, expr: str) -> list[dict]:
        r = httpx.get(self.url + "/api/v1/query", params={"query": expr}, timeout=10)
        body = r.json()
        if body.get("status") != "success":
            raise AssertionError(f"{expr!r}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]["result"]

    def label_values(self, label: str, match: str) -> list[str]:
        r = httpx.get(f"{self.url}/api/v1/label/{label}/values", params={"match[]": match},
                      timeout=10)
        return r.json()["data"]


class Mesh:
    """A devhub and two agents (the second bootstraps to the first) that see each other."""

    def __init__(self, root: Path, prom: Prometheus | None = None):
        self.root, self.prom = root, prom
        self.hub = DevHubThread(seed=SEED)
        self.agents: list[agents.AgentProc] = []

    def __enter__(self):
        self.hub.__enter__()
        try:
            for name in AGENT_NAMES:
                boot = self.agents[0].addr if self.agents else ""
                a = agents.start(self.root, name, self.hub.url, "t-bot", "owner/tasks",
                                 bootstrap=boot, BZZZ_SANDBOX="none",
                                 BZZZ_ANNOUNCE_INTERVAL="1")
                self.agents.append(a)
                if self.prom:  # scraped from the start: discovery takes a few seconds
                    self.prom.set_targets(AGENT_JOB, [hostport(x.api) for x in self.agents])
                wait_for(lambda a=a: a.proc.poll() is not None
                         or httpx.get(a.api + "/healthz").status_code == 200, 30,
                         what=f"agent {name} healthy")
                assert a.proc.poll() is None, f"agent {name} exited: {a.log.read_text()[-500:]}"
            # each in the other's table: labelled series (pubsub, peer events) exist now
            for a in self.agents:
                wait_for(lambda a=a: re.search(r"^bzzz_peers 1\.0$", self.metrics(a), re.M),
                         30, what=f"{a.name} sees its peer")
        except BaseException:
            self.__exit__(*sys.exc_info())
            raise
        return self

    def metrics(self, agent) -> str:
        return httpx.get(agent.api + "/metrics", timeout=10).text

    def __exit__(self, *exc):
        agents.stop_all(self.agents)
        for a in self.agents:
            if exc[0] is not None:
                print(f"--- {a.name} log tail ---\n{a.log.read_text()[-3000:]}")
        self.hub.__exit__(None, None, None)


def hostport(url: str) -> str:
    return url.split("://", 1)[1]


def stand_in_monitor_registry():
    """The monitor's /metrics as docs/monitor-api.md ("Metrics") defines it, with values, so
    the dashboard's mesh half is evaluated against the documented shape before the monitor
    exists (the real monitor's test below checks the same with `bzzz monitor`)."""
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
    r = CollectorRegistry()
    up = Gauge("bzzz_mesh_agents", "Agents by state", ["state"], registry=r)
    up.labels("up").set(len(AGENT_NAMES))
    up.labels("gone").set(0)
    tasks = Gauge("bzzz_mesh_tasks", "Tasks by state", ["state"], registry=r)
    for i, state in enumerate(("waiting", "claimed", "running", "needs_input",
                               "needs_approval", "review", "done", "failed")):
        tasks.labels(state).set(i)
    Counter("bzzz_mesh_claim_conflicts", "Contention decisions", registry=r).inc(2)
    help_requests = Counter("bzzz_mesh_help_requests", "Help requests by outcome",
                            ["outcome"], registry=r)
    for outcome in ("handed_over", "unanswered", "exhausted"):
        help_requests.labels(outcome).inc()
    Gauge("bzzz_mesh_log_entries", "Entries replicated", registry=r).set(120)
    logs = Gauge("bzzz_mesh_logs", "Logs by verification state", ["state"], registry=r)
    for state in ("verified", "syncing", "frozen", "failing"):
        logs.labels(state).set(1 if state == "verified" else 0)
    lag = Histogram("bzzz_mesh_replication_lag_seconds", "Decision to indexed", registry=r)
    for v in (0.01, 0.2, 1.5):
        lag.observe(v)
    Counter("bzzz_mesh_verification_failures", "Replicas that failed", registry=r)
    Counter("bzzz_mesh_index_entries", "Decisions indexed", registry=r).inc(120)
    Counter("bzzz_log_follow_stalls", "Log followers started again", registry=r)
    # not in the docs' table, but the monitor has it (bzzz/monitor/metrics.py)
    Counter("bzzz_mesh_events_dropped", "Live-page events dropped", registry=r)
    refused = Counter("bzzz_mesh_decisions_refused", "Decisions that did not count",
                      ["reason"], registry=r)
    for reason in ("no_claim", "future", "command", "log_key"):
        refused.labels(reason)
    info = Gauge("bzzz_mesh_agent_info", "Known agents", ["peer_id", "node_id", "version"],
                 registry=r)
    for i, name in enumerate(AGENT_NAMES):
        info.labels(f"12D3KooW{'x' * 44}{i}", name, "0.1.0").set(1)
    Gauge("bzzz_monitor_info", "The monitor", ["peer_id", "node_id", "version"],
          registry=r).labels(f"12D3KooW{'m' * 45}", "mon", "0.1.0").set(1)
    return r


@pytest.fixture(scope="module")
def stand_in():
    from prometheus_client import start_http_server
    port = free_port()
    server, thread = start_http_server(port, "127.0.0.1", stand_in_monitor_registry())
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    thread.join(5)


@pytest.fixture(scope="module")
def root():
    # a root the agents' task user can enter (pytest's temporary directories are root's)
    path = Path(tempfile.mkdtemp(prefix="bzzz-test-prom-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def prom(root, stand_in):
    """One Prometheus for the module, scraping the agents and the stand-in monitor."""
    with Prometheus(root / "prometheus") as p:
        p.set_targets(MONITOR_JOB, [hostport(stand_in)])
        yield p


@pytest.fixture(scope="module")
def mesh(root, prom):
    with Mesh(root / "mesh", prom) as m:
        yield m


def test_agent_metrics_pass_promtool_and_the_naming_rules(mesh):
    tool = promtool()
    dash_exprs = [e for _, e in queries(dashboard())]
    for agent in mesh.agents:
        text = mesh.metrics(agent)
        r = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True,
                           text=True)
        assert r.returncode == 0, f"{agent.name}: {r.stdout}{r.stderr}"
        assert not label_problems(text), label_problems(text)
        types = series_types(text)
        assert all(n.startswith("bzzz_") for n in types), sorted(types)
        assert all(n.endswith("_total") for n, t in types.items() if t == "counter")
        # the dashboard reads every series an agent exposes
        missing = sorted(n for n in types if not uses(n, dash_exprs))
        assert not missing, f"agent series the dashboard does not show: {missing}"


def evaluate_all(prom: Prometheus, expected: dict[str, str]) -> None:
    """Every query evaluates: a bad join (many-to-many) fails only here, not in promtool."""
    for where, expr in expected.items():
        try:
            prom.query(expr)
        except AssertionError as exc:
            raise AssertionError(f"{where}: {exc}") from None


def wait_for_data(prom: Prometheus, expected: dict[str, str], what: str) -> None:
    """Every query evaluates, then every one answers with data."""
    evaluate_all(prom, expected)
    empty: list[str] = []

    def answered():
        empty[:] = [where for where, expr in expected.items() if not prom.query(expr)]
        return not empty
    try:
        wait_for(answered, 20, interval=0.5, what=what)
    except TimeoutError:
        raise AssertionError(f"dashboard queries without data: {empty}") from None


def test_a_real_prometheus_scrapes_the_agents_and_answers_promql(mesh, prom):
    names = {a.name for a in mesh.agents}

    def peers_by_node():
        # the agents' series joined to their node names, as the dashboard does
        result = prom.query("sum by (node_id) (bzzz_peers * on (instance) "
                            "group_left (node_id) bzzz_info)")
        return {s["metric"]["node_id"]: float(s["value"][1]) for s in result}
    assert wait_for(lambda: peers_by_node() == dict.fromkeys(names, 1.0), 20,
                    what="prometheus has both agents' peer counts")
    assert set(prom.label_values("node_id", "bzzz_info")) == names  # the $node variable
    up = prom.query(f'up{{job="{AGENT_JOB}"}}')
    assert sorted(float(s["value"][1]) for s in up) == [1.0, 1.0]

    # every dashboard query over agent series evaluates, and every one whose series have
    # samples on the agents answers with data
    dash = dashboard()
    variables = variable_names(dash)
    sampled = {n for a in mesh.agents for n in re.findall(
        r"^(bzzz_\w+?)(?:_bucket|_sum|_count)?(?:\{[^}]*\})? ", mesh.metrics(a), re.M)}
    over_agents, with_samples = {}, {}
    for where, expr in queries(dash):
        series = set(re.findall(r"\b(bzzz_\w+?)(?:_bucket)?\b(?!\w)", expr))
        if series and not any(s.startswith(("bzzz_mesh_", "bzzz_monitor_")) for s in series):
            over_agents[where] = concrete(expr, variables)
            if series <= sampled:
                with_samples[where] = over_agents[where]
    assert len(with_samples) >= 10
    evaluate_all(prom, over_agents)  # with or without data
    wait_for_data(prom, with_samples, "every agent panel with samples has data")


def test_the_dashboards_mesh_queries_over_the_documented_monitor_series(stand_in, mesh, prom):
    """A stand-in serving exactly the documented series: check_monitor (what the real
    monitor's test asserts) passes on it."""
    check_monitor(stand_in, promtool(), mesh, prom)


def test_a_real_prometheus_scrapes_the_monitor(mesh, tmp_path):
    """A real `bzzz monitor` following the two agents: promtool and the naming rules pass on
    its /metrics, every documented series is there and on the dashboard, and a Prometheus of
    its own scrapes it with the agents and answers every mesh query of the dashboard."""
    pytest.importorskip("bzzz.monitor", reason="bzzz.monitor is not importable")
    mon = agents.start_monitor(tmp_path, mesh.hub.url, "t-bot", "owner/tasks",
                               bootstrap=mesh.agents[0].addr, BZZZ_ANNOUNCE_INTERVAL="1",
                               BZZZ_MONITOR__POLL_INTERVAL="0.5",
                               BZZZ_MONITOR__AGENT_EXPIRY="5")
    try:
        wait_for(lambda: mon.proc.poll() is not None
                 or httpx.get(mon.url + "/healthz").status_code == 200, 30,
                 what="monitor healthy")
        assert mon.proc.poll() is None, f"the monitor exited: {mon.log.read_text()[-2000:]}"
        check_monitor(mon.url, promtool(), mesh)
    except BaseException:
        print(f"--- monitor log tail ---\n{mon.log.read_text()[-3000:]}")
        raise
    finally:
        mon.stop()


def check_monitor(monitor_url: str, tool: str, mesh: Mesh,
                  prom: Prometheus | None = None) -> None:
    """What the monitor's tests assert, given only its URL: promtool and the naming rules pass
    on its /metrics, every series docs/monitor-api.md names is there, and Prometheus (``prom``,
    already scraping it, or one started here) answers every mesh query of the dashboard."""
    def mesh_metrics() -> str:
        return httpx.get(monitor_url + "/metrics", timeout=10).text
    up = rf'^bzzz_mesh_agents\{{state="up"\}} {len(mesh.agents)}\.0$'
    wait_for(lambda: re.search(up, mesh_metrics(), re.M), 30,
             what="the monitor sees every agent up")
    text = mesh_metrics()
    r = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not label_problems(text), label_problems(text)
    types = series_types(text)
    for name in documented_monitor_series():
        assert name in types, f"{name} (docs/monitor-api.md) missing from the monitor's /metrics"
    dash_exprs = [e for _, e in queries(dashboard())]
    missing = sorted(n for n in types if not uses(n, dash_exprs))
    assert not missing, f"monitor series the dashboard does not show: {missing}"
    if prom is None:
        with Prometheus(Path(tempfile.mkdtemp(prefix="bzzz-prom-"))) as own:
            try:
                own.set_targets(MONITOR_JOB, [hostport(monitor_url)])
                own.set_targets(AGENT_JOB, [hostport(a.api) for a in mesh.agents])
                return check_monitor_queries(own, mesh)
            finally:
                shutil.rmtree(own.root, ignore_errors=True)
    check_monitor_queries(prom, mesh)


def check_monitor_queries(prom: Prometheus, mesh: Mesh) -> None:
    assert wait_for(lambda: [float(s["value"][1]) for s in prom.query(
        'sum(bzzz_mesh_agents{state="up"})')] == [float(len(mesh.agents))], 20,
        what="prometheus has the monitor's agent count")
    info = prom.query("bzzz_monitor_info")
    assert len(info) == 1 and info[0]["metric"]["job"] == MONITOR_JOB
    dash = dashboard()
    variables = variable_names(dash)
    mesh_queries = {w: concrete(e, variables) for w, e in queries(dash)
                    if "bzzz_mesh_" in e or "bzzz_monitor_" in e}
    assert len(mesh_queries) >= 15
    wait_for_data(prom, mesh_queries, "every mesh panel has data")

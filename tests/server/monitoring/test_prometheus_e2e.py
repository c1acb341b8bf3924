"""End to end against a real Prometheus: it scrapes a running sisguard (shipped scrape config, 1 s
interval), loads the shipped alert rules, and every PromQL expression of the dashboard and of the
alert rules returns data after Predict (shadow sampling and noise probes at 1.0) and Explain traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml
from prometheus_client import CollectorRegistry
from support.server import write_config

from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.proto.sisguard.v1 import sisguard_pb2_grpc as pb_grpc
from sisguard.server.app import App
from sisguard.server.config import load_settings
from sisguard.wire import to_tensor

DEPLOY = Path(__file__).resolve().parents[3] / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "sisguard.json"

# What Grafana substitutes before sending a query: "All" pairs, and a rate window of several scrapes.
GRAFANA_VARS = {"$__rate_interval": "30s", "$__interval": "5s", "$__range": "5m", "$pair": ".*"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def with_bool(expr: str) -> str:
    """``expr`` with ``bool`` after every comparison outside label matchers and strings.

    Alert expressions filter to the series past their threshold, so a healthy server returns
    nothing; with ``bool`` the same expression returns 0/1 for every series it computes.
    """
    out, depth, quote, i = [], 0, "", 0
    while i < len(expr):
        c = expr[i]
        if quote:
            out.append(c)
            if c == "\\":
                out.append(expr[i + 1])
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'`":
            quote = c
            out.append(c)
        elif c == "{":
            depth += 1
            out.append(c)
        elif c == "}":
            depth -= 1
            out.append(c)
        elif depth == 0 and (m := re.match(r"(==|!=|>=|<=|>|<)(?!\s*bool\b)", expr[i:])):
            out.append(m.group(1) + " bool")
            i += len(m.group(1))
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


def test_with_bool_rewrites_comparisons_only() -> None:
    e = 'sum by (pair) (rate(x{code!="OK",a=~"b"}[5m])) / 2 > 0.2 and y >= 10'
    assert with_bool(e) == 'sum by (pair) (rate(x{code!="OK",a=~"b"}[5m])) / 2 > bool 0.2 and y >= bool 10'
    assert with_bool("up == bool 0") == "up == bool 0"


def dashboard_queries() -> list[tuple[str, str]]:
    dash = json.loads(DASHBOARD.read_text())
    found = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            expr = t["expr"]
            for k, v in GRAFANA_VARS.items():
                expr = expr.replace(k, v)
            assert "$" not in expr, f"unsubstituted variable in {expr!r}"
            found.append((f"panel {p['title']!r} {t['refId']}", expr))
    return found


def alert_queries() -> list[tuple[str, str]]:
    rules = [r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]]
    return [(f"alert {r['alert']}", with_bool(r["expr"])) for r in rules]


class PromAPI:
    def __init__(self, port: int) -> None:
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path: str, **params: str) -> dict:
        url = f"{self.base}{path}?{urllib.parse.urlencode(params)}" if params else f"{self.base}{path}"
        with urllib.request.urlopen(url, timeout=10) as resp:
            return json.loads(resp.read())

    def query(self, expr: str) -> list[dict]:
        body = self.get("/api/v1/query", query=expr)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.base}/-/ready", timeout=2) as resp:
                return resp.status == 200
        except OSError:
            return False


@contextlib.contextmanager
def prometheus(binary: str, tmp: Path, metrics_port: int) -> Iterator[PromAPI]:
    """Our own Prometheus: the shipped scrape config pointed at ``metrics_port``, temp storage, loopback."""
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"}
    config["rule_files"] = [str(ALERTS)]
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{metrics_port}"]}]
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (tmp / "prometheus.log").open("w")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    api = PromAPI(port)
    try:
        end = time.monotonic() + 30
        while not api.ready():
            if proc.poll() is not None or time.monotonic() > end:
                raise AssertionError(f"prometheus did not start:\n{(tmp / 'prometheus.log').read_text()[-2000:]}")
            time.sleep(0.1)
        yield api
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


async def until(api: PromAPI, expr: str, what: str, timeout: float = 40.0) -> list[dict]:
    end = time.monotonic() + timeout
    while True:
        result = await asyncio.to_thread(api.query, expr)
        if result:
            return result
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what} ({expr})")
        await asyncio.sleep(0.25)


async def test_every_dashboard_and_alert_expression_returns_data(tmp_path: Path, models, kit, prometheus_tools) -> None:
    shadow = {
        "sample_rate": 1.0,
        "max_per_second": 100.0,
        "queue_size": 4,
        "noise_probe": {"sample_rate": 1.0, "levels": [0.05, 0.2], "copies": 8, "max_per_second": 100.0},
        "shift_probe": {"sample_rate": 1.0, "max_per_second": 100.0, "value_range": [0.0, 1.0]},
    }
    verdict = {"min_samples": 5, "update_seconds": 0.2, "bootstrap": 200}
    config = write_config(
        tmp_path,  # the dense model doubles as the control: the fragile pruned model departs from both
        [kit.pair("mini", models["dense"], models["fragile"], shadow=shadow, control=str(models["dense"]),
                  verdict=verdict)],
        runtime={"providers": ["cpu"], "intra_op_threads": 1},
    )
    app = App(load_settings(config, metrics_port=0), registry=CollectorRegistry())
    started = time.monotonic()
    await app.start()
    try:
        assert app.metrics_port
        prom_dir = tmp_path / "prom"
        prom_dir.mkdir()
        with prometheus(prometheus_tools["prometheus"], prom_dir, app.metrics_port) as api:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
                stub = pb_grpc.SISGuardStub(channel)
                x = kit.grid_rows(8, seed=3)
                for i in range(0, 8, 2):  # Predict BOTH: prediction agreement, shadow samples, noise probes
                    await stub.Predict(pb.PredictRequest(pair="mini", inputs=to_tensor(x[i : i + 2]), variant=pb.BOTH))
                for row in x[:2]:  # client explanations
                    resp = await stub.Explain(pb.ExplainRequest(pair="mini", input=to_tensor(row)))
                    assert resp.HasField("agreement")
                with pytest.raises(grpc.aio.AioRpcError):  # one failure, for the error panels
                    await stub.Predict(pb.PredictRequest(pair="nope", inputs=to_tensor(x[:1])))

            await until(api, 'sisguard_explanations_total{source="shadow"} > 0', "a scraped shadow explanation")
            await until(api, "sum(sisguard_noise_probe_copies_total) > 0", "scraped noise probes")
            await until(api, "sum(sisguard_shift_probe_copies_total) > 0", "scraped shift probes")
            await until(api, 'sisguard_pair_verdict{verdict="damaged"} == 1', "a scraped verdict")
            await until(api, 'count_over_time(up{job="sisguard"}[1m]) >= 6', "six scrapes")
            await until(api, "count(ALERTS_FOR_STATE) >= 0 or vector(1)", "rule evaluation")
            traffic_ready = time.monotonic() - started

            assert api.query('up{job="sisguard"}')[0]["value"][1] == "1"
            pairs = await asyncio.to_thread(api.get, "/api/v1/label/pair/values", **{"match[]": "sisguard_model_ready"})
            assert pairs["data"] == ["mini"]  # the dashboard's $pair variable query

            empty = []
            queries = dashboard_queries() + alert_queries()
            for where, expr in queries:
                if not await asyncio.to_thread(api.query, expr):
                    empty.append(f"{where}: {expr}")
            assert not empty, "expressions without data:\n" + "\n".join(empty)

            rules = (await asyncio.to_thread(api.get, "/api/v1/rules"))["data"]["groups"]
            loaded = [r for g in rules for r in g["rules"]]
            assert len(loaded) == len(alert_queries())
            assert all(r["health"] == "ok" for r in loaded), [(r["name"], r.get("lastError")) for r in loaded]
            print(
                f"{len(queries)} expressions ({len(dashboard_queries())} dashboard, {len(alert_queries())} alert) "
                f"returned data; traffic and scrapes ready after {traffic_ready:.1f} s"
            )
    finally:
        await app.stop(grace=0.5)

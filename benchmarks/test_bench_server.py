"""`quantkit serve` under load vs the bare predictor, with and without dynamic batching.

8 keep-alive client threads x 200 requests of one MNIST image each (JSON) against the
real server in its own process (`serve()`, uvicorn), then the same 1600 inputs through
the same artifact's predictor called in this process, one after another. Both sides get
one predictor with 1 thread, so the ratio is what HTTP, JSON and queueing cost (or, with
batching, what merging requests gains). Request bodies are encoded before timing: the
clients measure the server, not their own JSON encoder. pytest-benchmark records the
whole load as its one round, then its samples are replaced by the per-request latencies
(as test_bench_targets does); the numbers to read are in extra_info.

Two models: the tiny test CNN (serving overhead dominates) and the demo's MobileNetV1
x0.5 (inference dominates), both as onnxruntime-fp32; and once with .npy bodies both
ways, the binary path that skips JSON. `server_cpu_ms_per_request` (the server process's
CPU time over the load / requests) is the least noisy number on a shared machine.
"""
from __future__ import annotations

import concurrent.futures
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import quantkit  # noqa: F401 - before paddle
from quantkit.benchmark.stats import summarize
from quantkit.targets.convert import convert, open_artifact

ROOT = Path(__file__).resolve().parents[1]
TARGET = "onnxruntime-fp32"
CLIENTS, REQUESTS = 8, 200
DISTINCT_INPUTS = 64
SERVER_SCRIPT = """
import sys, quantkit
from quantkit.serving.server import serve
wait = None if sys.argv[3] == "off" else float(sys.argv[3])
serve(sys.argv[1], port=int(sys.argv[2]), workers=1, threads=1, max_batch=32,
      max_wait_ms=wait, access_log=False)
"""


@pytest.fixture(scope="module")
def models(demo_models, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bench-server")
    fp32_dir, _ = demo_models
    return {"tiny-cnn": convert(ROOT / "tests" / "data" / "paddle3", TARGET, root / "tiny").folder,
            "mobilenet-x0.5": convert(fp32_dir, TARGET, root / "mobilenet").folder}


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    from quantkit.datasets import mnist

    return mnist.load("test", limit=DISTINCT_INPUTS).images[:, None]  # [64, 1, 1, 28, 28]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class ServerProcess:
    """`serve()` in a subprocess: the server does not share a GIL with the clients."""

    def __init__(self, folder: Path, max_wait_ms: float | None) -> None:
        self.port = free_port()
        wait = "off" if max_wait_ms is None else str(max_wait_ms)
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER_SCRIPT, str(folder), str(self.port), wait],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def __enter__(self) -> "ServerProcess":
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.process.communicate()[1][-2000:]}")
            try:
                self.get("/v1/health")
                return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("server did not start in 120 s")

    def __exit__(self, *exc_info) -> None:
        self.process.send_signal(signal.SIGINT)
        self.process.communicate(timeout=30)

    def get(self, path: str) -> dict:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            return json.loads(conn.getresponse().read())
        finally:
            conn.close()

    def cpu_seconds(self) -> float:
        """User + system CPU time the server process has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def encode(image: np.ndarray, body: str) -> bytes:
    if body == "npy":
        buffer = io.BytesIO()
        np.save(buffer, image, allow_pickle=False)
        return buffer.getvalue()
    return json.dumps({"inputs": {"image": image.tolist()}}).encode()


def decode(data: bytes, body: str) -> np.ndarray:
    if body == "npy":
        return np.load(io.BytesIO(data), allow_pickle=False)
    return np.array(json.loads(data)["outputs"][0], dtype=np.float32)


def http_load(port: int, bodies: list[bytes], headers: dict[str, str]
              ) -> tuple[list[float], list[bytes], float]:
    """(per-request seconds, answers in request order, wall seconds) of the 8 x 200 load."""
    def client(index: int) -> tuple[list[float], list[tuple[int, bytes]]]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        latencies, answers = [], []
        for step in range(REQUESTS):
            number = index * REQUESTS + step
            start = time.perf_counter()
            conn.request("POST", "/v1/predict", body=bodies[number % len(bodies)],
                         headers=headers)
            response = conn.getresponse()
            data = response.read()
            latencies.append(time.perf_counter() - start)
            assert response.status == 200, data
            answers.append((number, data))
        conn.close()
        return latencies, answers

    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(client, range(CLIENTS)))
    wall = time.perf_counter() - start
    latencies = [seconds for result in results for seconds in result[0]]
    answers = dict(pair for result in results for pair in result[1])
    return latencies, [answers[number] for number in range(CLIENTS * REQUESTS)], wall


def bare_load(folder: Path, images: np.ndarray) -> tuple[list[float], list[np.ndarray], float]:
    """The same 1600 inputs through one in-process predictor (1 thread), in sequence."""
    predictor = open_artifact(folder, threads=1)
    predictor.run({"image": images[0]})  # warm-up, as the server's pool does
    latencies, outputs = [], []
    start = time.perf_counter()
    for number in range(CLIENTS * REQUESTS):
        call_start = time.perf_counter()
        outputs.append(predictor.run({"image": images[number % len(images)]})[0])
        latencies.append(time.perf_counter() - call_start)
    return latencies, outputs, time.perf_counter() - start


HEADERS = {"json": {"Content-Type": "application/json"},
           "npy": {"Content-Type": "application/x-npy", "Accept": "application/x-npy"}}
CASES = [("tiny-cnn", "off", "json"), ("tiny-cnn", "on", "json"), ("tiny-cnn", "off", "npy"),
         ("mobilenet-x0.5", "off", "json"), ("mobilenet-x0.5", "on", "json")]


@pytest.mark.parametrize("model, batching, body", CASES,
                         ids=["-".join(case) for case in CASES])
def test_server_vs_bare_predictor(benchmark, models, images, model, batching, body):
    folder = models[model]
    bodies = [encode(image, body) for image in images]
    bare_latencies, bare_outputs, bare_wall = bare_load(folder, images)
    max_wait_ms = 2.0 if batching == "on" else None
    measured = {}
    with ServerProcess(folder, max_wait_ms) as server:
        http_load(server.port, bodies[:8], HEADERS[body])  # warm connections and the pool
        before, cpu_before = server.get("/v1/health"), server.cpu_seconds()
        benchmark.pedantic(lambda: measured.update(zip(("latencies", "answers", "wall"),
                                                       http_load(server.port, bodies,
                                                                 HEADERS[body]))),
                           rounds=1, iterations=1)
        cpu = server.cpu_seconds() - cpu_before
        health = server.get("/v1/health")
    if benchmark.stats is not None:
        benchmark.stats.stats.data[:] = measured["latencies"]
    for number, data in enumerate(measured["answers"]):  # every answer is the bare one
        np.testing.assert_allclose(decode(data, body), bare_outputs[number], atol=1e-4,
                                   rtol=1e-4)
    total = CLIENTS * REQUESTS
    server_stats, bare_stats = summarize(measured["latencies"]), summarize(bare_latencies)
    server_rps, bare_rps = total / measured["wall"], total / bare_wall
    runs = health["model_runs"] - before["model_runs"]
    benchmark.group = f"server vs bare predictor, {model}"
    benchmark.extra_info.update(
        model=model, target=TARGET, batching=batching, max_wait_ms=max_wait_ms, body=body,
        clients=CLIENTS, requests=total, workers=1, threads=1,
        server_requests_per_s=round(server_rps, 1), bare_requests_per_s=round(bare_rps, 1),
        throughput_ratio=round(server_rps / bare_rps, 3),
        server_p50_ms=round(server_stats.p50_ms, 3), server_p99_ms=round(server_stats.p99_ms, 3),
        bare_p50_ms=round(bare_stats.p50_ms, 3), bare_p99_ms=round(bare_stats.p99_ms, 3),
        server_cpu_ms_per_request=round(cpu * 1000 / total, 3),
        model_runs=runs, mean_batch_rows=round(total / runs, 2) if runs else None)
    assert health["errors"] == 0 and health["requests"] - before["requests"] == total

"""`quantkit serve`: the real HTTP server on a converted tiny model, over real sockets.

Every prediction is checked against the same artifact's predictor called directly; every
bad request must get its 4xx with a message naming the problem, never a 5xx.
"""
from __future__ import annotations

import concurrent.futures
import contextlib
import http.client
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import quantkit  # noqa: F401 - before paddle: importing paddle first breaks zlib
from quantkit.errors import QuantkitError
from quantkit.data import FeedSpec
from quantkit.serving.app import create_app
from quantkit.serving.server import ServerThread, bind_socket
from quantkit.serving.settings import ServeSettings
from quantkit.serving.source import ModelSource, source_from_path
from quantkit.serving.validation import RequestError, check_inputs, parse_request

MODEL = Path(__file__).parent / "data" / "paddle3"  # "image" [-1, 1, 28, 28] -> 10 logits
TARGETS = ("intel-cpu-fp32", "onnxruntime-fp32")
JSON_HEADERS = {"Content-Type": "application/json"}
NPY_HEADERS = {"Content-Type": "application/x-npy"}


# ---- fixtures and helpers -----------------------------------------------------------------

@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    from quantkit.targets.convert import convert

    root = tmp_path_factory.mktemp("serving")
    return {target: convert(MODEL, target, root / target).folder for target in TARGETS}


@pytest.fixture(scope="module")
def bundle(artifacts, tmp_path_factory) -> Path:
    """The intel-cpu-fp32 artifact as a release bundle folder (its .tar.gz beside it)."""
    from quantkit.packaging import package

    return package(artifacts["intel-cpu-fp32"], tmp_path_factory.mktemp("bundles"))


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    """32 distinct single-image batches, [32, 1, 1, 28, 28]."""
    return np.random.default_rng(7).standard_normal((32, 1, 1, 28, 28)).astype(np.float32)


def direct_outputs(folder: Path, batches: np.ndarray, threads: int = 1) -> list[np.ndarray]:
    """Logits from the artifact's own predictor, one call per batch (the ground truth)."""
    from quantkit.targets.convert import open_artifact

    predictor = open_artifact(folder, threads=threads)
    return [predictor.run({"image": batch})[0] for batch in batches]


@contextlib.contextmanager
def running(source: ModelSource, **settings):
    """The real app under uvicorn on a free port of 127.0.0.1, in a background thread."""
    app = create_app(source, ServeSettings(**settings))
    with ServerThread(app, bind_socket("127.0.0.1", 0)) as server:
        yield server


def call(port: int, method: str, path: str, body: bytes | None = None,
         headers: dict | None = None, conn: http.client.HTTPConnection | None = None):
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        if own:
            conn.close()


def predict_json(port: int, inputs, conn=None) -> tuple[int, dict]:
    status, _, data = call(port, "POST", "/v1/predict", json.dumps({"inputs": inputs}).encode(),
                           JSON_HEADERS, conn)
    return status, json.loads(data)


def get_json(port: int, path: str) -> dict:
    status, _, data = call(port, "GET", path)
    assert status == 200, data
    return json.loads(data)


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def intel_server(artifacts):
    """Small limits so the limit checks are cheap to hit: 4 rows, 64 KiB bodies."""
    with running(source_from_path(artifacts["intel-cpu-fp32"], threads=1), workers=1,
                 max_batch=4, max_body_bytes=64 * 1024) as server:
        yield server


# ---- correct answers ----------------------------------------------------------------------

@pytest.mark.parametrize("target", TARGETS)
def test_json_prediction_equals_the_direct_predictor(artifacts, images, target):
    batch = images[:3].reshape(3, 1, 28, 28)
    expected = direct_outputs(artifacts[target], [images[0], batch])
    with running(source_from_path(artifacts[target], threads=1)) as server:
        status, answer = predict_json(server.port, {"image": images[0].tolist()})
        assert status == 200, answer
        assert answer["model"] == target and answer["batch"] == 1
        assert len(answer["outputs"]) == 1
        np.testing.assert_allclose(np.array(answer["outputs"][0]), expected[0], atol=1e-6)
        # The one-input short form, and a batch of 3 rows.
        status, answer = predict_json(server.port, batch.tolist())
        assert status == 200 and answer["batch"] == 3
        np.testing.assert_allclose(np.array(answer["outputs"][0]), expected[1], atol=1e-6)
        # 64 rows (~1.3 MB of JSON) are decoded off the event loop; same answers.
        big = np.concatenate([batch] * 22)[:64]
        status, answer = predict_json(server.port, {"image": big.tolist()})
        assert status == 200 and answer["batch"] == 64
        np.testing.assert_allclose(np.array(answer["outputs"][0])[:3], expected[1], atol=1e-5)


def test_npy_request_equals_the_direct_predictor(artifacts, images, intel_server):
    expected = direct_outputs(artifacts["intel-cpu-fp32"], images[:1])[0]
    status, headers, data = call(intel_server.port, "POST", "/v1/predict", npy_bytes(images[0]),
                                 {**NPY_HEADERS, "Accept": "application/x-npy"})
    assert status == 200 and headers["content-type"] == "application/x-npy"
    answer = np.load(io.BytesIO(data), allow_pickle=False)
    assert answer.dtype == np.float32 and answer.shape == (1, 10)
    np.testing.assert_allclose(answer, expected, atol=1e-6)
    # .npy in, JSON out; float64 and big-endian input are cast to the feed's float32.
    for array in (images[0].astype(np.float64), images[0].astype(">f4"),
                  np.asfortranarray(images[0])):
        status, _, data = call(intel_server.port, "POST", "/v1/predict", npy_bytes(array),
                               NPY_HEADERS)
        assert status == 200, data
        np.testing.assert_allclose(np.array(json.loads(data)["outputs"][0]), expected, atol=1e-6)


@pytest.mark.parametrize("form", ["folder", "archive"])
def test_a_release_bundle_serves_the_artifacts_answers(artifacts, bundle, images, tmp_path,
                                                       form):
    path = bundle if form == "folder" else bundle.with_name(bundle.name + ".tar.gz")
    source = source_from_path(path, threads=1, extract_to=tmp_path / "extracted")
    assert source.metadata["source"] == "bundle" and source.name == "intel-cpu-fp32"
    assert source.metadata["versions"]["paddlepaddle"] == "2.6.2"
    expected = direct_outputs(artifacts["intel-cpu-fp32"], images[:1])[0]
    with running(source) as server:
        status, answer = predict_json(server.port, {"image": images[0].tolist()})
        assert status == 200
        np.testing.assert_allclose(np.array(answer["outputs"][0]), expected, atol=1e-6)
        meta = get_json(server.port, "/v1/metadata")
    assert meta["source"] == "bundle" and meta["precision"] == "fp32"
    assert meta["manifest"]["schema"].startswith("quantkit.bundle/")
    assert "files" not in meta["manifest"]  # provenance, not every checksum


def test_a_damaged_bundle_is_refused_before_serving(bundle, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(bundle, damaged)
    params = damaged / "model" / "model.pdiparams"
    data = bytearray(params.read_bytes())
    data[100] ^= 0xFF
    params.write_bytes(bytes(data))
    with pytest.raises(QuantkitError, match="model/model.pdiparams"):
        source_from_path(damaged)


def test_metadata_describes_the_model(intel_server):
    meta = get_json(intel_server.port, "/v1/metadata")
    assert meta["target"] == "intel-cpu-fp32" and meta["backend"] == "paddle-inference"
    assert meta["precision"] == "fp32" and meta["output_count"] == 1
    assert meta["inputs"] == [{"name": "image", "shape": [-1, 1, 28, 28], "dtype": "float32"}]
    assert meta["server"]["max_batch"] == 4 and meta["server"]["batching"] is False
    health = get_json(intel_server.port, "/v1/health")
    assert health["status"] == "ok" and health["workers"] == health["workers_alive"] == 1


# ---- bad requests: each one a 4xx naming the problem -------------------------------------

IMAGE = np.full((1, 1, 28, 28), 0.5).tolist()


def _json(value) -> bytes:
    return json.dumps(value).encode()


def _image_with(value) -> list:
    image = np.full((1, 1, 28, 28), 0.5).tolist()
    image[0][0][3][4] = value
    return image


def _forged_npy() -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buffer, {"descr": "<f4", "fortran_order": False, "shape": (10**9, 1, 28, 28)})
    return buffer.getvalue() + b"\0" * 64


BAD_REQUESTS = [
    # (id, method, path, headers, body, status, words the message must hold)
    ("shape-rank", "POST", "/v1/predict", JSON_HEADERS,
     _json({"inputs": {"image": IMAGE[0]}}), 422,
     ["'image'", "[1, 28, 28]", "expects [-1, 1, 28, 28]"]),
    ("shape-dim", "POST", "/v1/predict", JSON_HEADERS,
     _json({"inputs": {"image": np.zeros((1, 1, 28, 27)).tolist()}}), 422,
     ["'image'", "[1, 1, 28, 27]", "expects [-1, 1, 28, 28]"]),
    ("strings", "POST", "/v1/predict", JSON_HEADERS, _json({"inputs": {"image": _image_with("x")}}),
     422, ["'image'", "strings"]),
    ("a-string", "POST", "/v1/predict", JSON_HEADERS, _json({"inputs": {"image": "zeros"}}),
     422, ["'image'", "string"]),
    ("bools", "POST", "/v1/predict", JSON_HEADERS, _json({"inputs": {"image": _image_with(True)}}),
     422, ["'image'", "true/false"]),
    ("all-bools", "POST", "/v1/predict", JSON_HEADERS,
     _json({"inputs": {"image": np.ones((1, 1, 28, 28), bool).tolist()}}), 422,
     ["'image'", "true/false"]),
    ("nan", "POST", "/v1/predict", JSON_HEADERS,
     _json({"inputs": {"image": _image_with(float("nan"))}}), 422, ["'image'", "NaN"]),
    ("infinity", "POST", "/v1/predict", JSON_HEADERS,
     _json({"inputs": {"image": _image_with(1)}}).replace(b"1,", b"1e999,", 1), 422,
     ["'image'", "infinite"]),
    ("float32-overflow", "POST", "/v1/predict", JSON_HEADERS,
     _json({"inputs": {"image": _image_with(1e39)}}), 422, ["'image'", "too large for float32"]),
    ("outputs-overflow", "POST", "/v1/predict", JSON_HEADERS,  # valid float32, but the
     _json({"inputs": {"image": np.full((1, 1, 28, 28), 3.4e38).tolist()}}), 422,  # model's
     ["overflowed", "application/x-npy"]),  # sums overflow: JSON cannot carry the answer
    ("null", "POST", "/v1/predict", JSON_HEADERS, _json({"inputs": {"image": _image_with(None)}}),
     422, ["'image'", "not numbers"]),
    ("ragged", "POST", "/v1/predict", JSON_HEADERS,
     _json({"inputs": {"image": [[[[1.0, 2.0], [3.0]]]]}}), 422, ["'image'", "rectangular"]),
    ("missing-input", "POST", "/v1/predict", JSON_HEADERS, _json({"inputs": {}}), 422,
     ["missing input 'image'"]),
    ("extra-input", "POST", "/v1/predict", JSON_HEADERS,
     _json({"inputs": {"image": IMAGE, "mask": [1]}}), 422, ["unknown input 'mask'", "image"]),
    ("misspelt-inputs", "POST", "/v1/predict", JSON_HEADERS, _json({"input": {"image": IMAGE}}),
     422, ["unknown key 'input'", '"inputs"']),
    ("no-inputs", "POST", "/v1/predict", JSON_HEADERS, _json({}), 422, ['no "inputs" key']),
    ("not-an-object", "POST", "/v1/predict", JSON_HEADERS, _json([1, 2]), 422, ["send an object"]),
    ("not-json", "POST", "/v1/predict", JSON_HEADERS, b'{"inputs": [1, 2', 400,
     ["not valid JSON", "line 1"]),
    ("empty-body", "POST", "/v1/predict", JSON_HEADERS, b"", 400, ["empty body"]),
    ("text-plain", "POST", "/v1/predict", {"Content-Type": "text/plain"}, b"1 2 3", 415,
     ["text/plain", "application/json"]),
    ("no-content-type", "POST", "/v1/predict", {}, _json({"inputs": IMAGE}), 415,
     ["no Content-Type"]),
    ("gzip", "POST", "/v1/predict", {**JSON_HEADERS, "Content-Encoding": "gzip"},
     b"\x1f\x8b\x08\x00", 415, ["Content-Encoding 'gzip'"]),
    ("empty-batch", "POST", "/v1/predict", JSON_HEADERS, _json({"inputs": {"image": []}}), 422,
     ["empty batch", "'image'"]),
    ("empty-batch-npy", "POST", "/v1/predict", NPY_HEADERS,
     npy_bytes(np.zeros((0, 1, 28, 28), np.float32)), 422, ["empty batch", "'image'"]),
    ("too-many-rows", "POST", "/v1/predict", JSON_HEADERS,
     _json({"inputs": np.zeros((5, 1, 28, 28)).tolist()}), 413, ["5 rows", "limit of 4"]),
    ("npy-wrong-shape", "POST", "/v1/predict", NPY_HEADERS,
     npy_bytes(np.zeros((2, 28, 28), np.float32)), 422, ["'image'", "[2, 28, 28]"]),
    ("npy-strings", "POST", "/v1/predict", NPY_HEADERS, npy_bytes(np.array([["a"]])), 422,
     ["'image'", "strings"]),
    ("npy-bools", "POST", "/v1/predict", NPY_HEADERS,
     npy_bytes(np.zeros((1, 1, 28, 28), bool)), 422, ["'image'", "true/false"]),
    ("npy-nan", "POST", "/v1/predict", NPY_HEADERS,
     npy_bytes(np.full((1, 1, 28, 28), np.nan, np.float32)), 422, ["'image'", "NaN"]),
    ("npy-empty-dtype", "POST", "/v1/predict", NPY_HEADERS,
     npy_bytes(np.zeros((1, 1, 28, 28), "V0")), 422, ["empty dtype"]),
    ("npy-garbage", "POST", "/v1/predict", NPY_HEADERS, b"not an npy file at all", 400,
     ["not a valid .npy"]),
    ("npy-forged-header", "POST", "/v1/predict", NPY_HEADERS, _forged_npy(), 400,
     ["declares shape [1000000000, 1, 28, 28]", "64 bytes"]),
    ("accept-html", "POST", "/v1/predict", {**JSON_HEADERS, "Accept": "text/html"},
     _json({"inputs": IMAGE}), 406, ["text/html", "application/x-npy"]),
    ("unknown-route", "POST", "/v1/predict/now", JSON_HEADERS, _json({"inputs": IMAGE}), 404,
     ["no route POST /v1/predict/now", "/v1/health"]),
    ("unknown-version", "GET", "/v2/health", {}, None, 404, ["no route GET /v2/health"]),
    ("get-predict", "GET", "/v1/predict", {}, None, 405, ["GET is not allowed on /v1/predict",
                                                          "POST"]),
    ("post-health", "POST", "/v1/health", JSON_HEADERS, b"{}", 405,
     ["POST is not allowed on /v1/health"]),
]


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=[case[0] for case in BAD_REQUESTS])
def test_bad_request_gets_a_4xx_naming_the_problem(intel_server, case):
    _, method, path, headers, body, status, words = case
    errors_before = get_json(intel_server.port, "/v1/health")["errors"]
    got, response_headers, data = call(intel_server.port, method, path, body, headers)
    assert got == status, data
    assert response_headers["content-type"] == "application/json"
    message = json.loads(data)["error"]
    for word in words:
        assert word in message, message
    health = get_json(intel_server.port, "/v1/health")
    assert health["status"] == "ok" and health["errors"] == errors_before


def test_declared_oversized_body_is_refused_before_it_is_read(intel_server):
    """Content-Length above the limit: 413 with only 1 of the 10 MB sent."""
    conn = http.client.HTTPConnection("127.0.0.1", intel_server.port, timeout=10)
    conn.putrequest("POST", "/v1/predict")
    conn.putheader("Content-Type", "application/json")
    conn.putheader("Content-Length", str(10_000_000))
    conn.endheaders(message_body=b"{")
    response = conn.getresponse()
    assert response.status == 413
    assert "10000000 bytes is above this server's limit of 65536" in json.loads(
        response.read())["error"]
    conn.close()


def test_chunked_oversized_body_is_cut_off_by_the_stream_cap(intel_server):
    """No Content-Length (chunked): the server counts what arrives and stops at the limit."""
    chunks = iter([b" " * 16384] * 5)  # 80 KiB of JSON whitespace, over the 64 KiB limit
    status, _, data = call(intel_server.port, "POST", "/v1/predict", chunks, JSON_HEADERS)
    assert status == 413
    assert "above this server's limit of 65536 bytes" in json.loads(data)["error"]


def test_a_client_hanging_up_mid_body_is_not_a_server_error(intel_server):
    with socket.create_connection(("127.0.0.1", intel_server.port)) as raw:
        raw.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                    b"\r\nContent-Length: 5000\r\n\r\n{\"inputs\": [")
    time.sleep(0.2)
    health = get_json(intel_server.port, "/v1/health")
    assert health["status"] == "ok" and health["errors"] == 0


def test_validation_of_multi_input_models():
    """Rules a one-input model cannot show: positional lists, .npy, batch disagreement."""
    feeds = (FeedSpec("ids", (-1, 4), "int64"), FeedSpec("mask", (-1, 4), "float32"))
    good = {"ids": [[1, 2, 3, 4]], "mask": [[1, 1, 0, 0]]}
    parsed = parse_request(_json({"inputs": good}), "application/json; charset=utf-8", feeds, 8)
    assert parsed.rows == 1 and parsed.inputs["ids"].dtype == np.int64
    assert parsed.inputs["mask"].dtype == np.float32
    refusals = [
        ({"inputs": [[1, 2, 3, 4]]}, "application/json", "takes 2 inputs (ids, mask)"),
        ({"inputs": {**good, "ids": [[1.5, 2, 3, 4]]}}, "application/json",
         "'ids' is int64: it takes whole numbers"),
        ({"inputs": {**good, "ids": [[2**63, 0, 0, 0]]}}, "application/json",
         "outside the int64 range"),
        ({"inputs": {**good, "mask": [[1, 1, 0, 0], [0, 0, 0, 0]]}}, "application/json",
         "'ids' has 1, 'mask' has 2)"),
    ]
    for body, content_type, words in refusals:
        with pytest.raises(RequestError, match=words.replace("(", r"\(").replace(")", r"\)")):
            parse_request(_json(body), content_type, feeds, 8)
    with pytest.raises(RequestError, match="holds one array and this model takes 2 inputs"):
        parse_request(npy_bytes(np.zeros((1, 4))), "application/x-npy", feeds, 8)
    with pytest.raises(RequestError) as refused:
        check_inputs({"ids": np.zeros((1, 4)), "mask": np.zeros((1, 4))},
                     (FeedSpec("ids", (1, 4), "int64"), FeedSpec("mask", (1, 4), "float32")), 0)
    assert refused.value.status == 413


# ---- the model failing, and models that cannot be served ---------------------------------

class FakePredictor:
    """Pure numpy: doubles its input, explodes on 13, and reports its batch size."""

    input_names = ("x",)

    def run(self, feeds):
        x = feeds["x"]
        if (x == 13).any():
            raise RuntimeError("kernel exploded on 13")
        return [x * 2, np.array(float(len(x)))]  # the 2nd output has no batch axis


FAKE = ModelSource((FeedSpec("x", (-1, 3), "float32"),), {"target": "fake"}, FakePredictor)


def test_a_failing_model_is_a_500_and_the_server_stays_healthy():
    with running(FAKE, workers=2) as server:
        status, answer = predict_json(server.port, [[13, 0, 0]])
        assert status == 500 and "kernel exploded on 13" in answer["error"]
        status, answer = predict_json(server.port, [[1, 2, 3]])
        assert status == 200 and answer["outputs"] == [[[2.0, 4.0, 6.0]], 1.0]
        health = get_json(server.port, "/v1/health")
        assert health["status"] == "ok" and health["workers_alive"] == 2
        assert health["errors"] == 1 and health["requests"] == 1
        # A .npy answer holds one array: a two-output model must ask for JSON.
        status, _, data = call(server.port, "POST", "/v1/predict", _json({"inputs": [[1, 2, 3]]}),
                               {**JSON_HEADERS, "Accept": "application/x-npy"})
        assert status == 406 and "2 outputs" in json.loads(data)["error"]


def test_batching_splits_back_or_falls_back_when_an_output_has_no_batch_axis():
    """The fake's 2nd output is a scalar: merged runs cannot be split, so the batcher
    answers each request alone and turns itself off, and every answer is still right."""
    with running(FAKE, workers=1, max_wait_ms=20, max_batch=16) as server:
        def ask(value):
            return predict_json(server.port, [[value, 0, 1]])

        values = range(100, 124)  # never 13, which the fake refuses
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            answers = list(pool.map(ask, values))
        for value, (status, answer) in zip(values, answers):
            assert status == 200, answer
            assert answer["outputs"] == [[[2.0 * value, 0.0, 2.0]], 1.0]
        batching = get_json(server.port, "/v1/health")["batching"]
        assert "no batch axis" in batching["disabled_reason"]


def test_batching_is_refused_for_a_fixed_batch_axis():
    fixed = ModelSource((FeedSpec("x", (1, 3), "float32"),), {"target": "fixed"}, FakePredictor)
    with pytest.raises(QuantkitError, match="input 'x' has a fixed batch size 1"):
        create_app(fixed, ServeSettings(max_wait_ms=5))


@pytest.mark.parametrize("profile_name, reason", [
    ("nvidia-trt-fp32", "paddlepaddle-gpu"),
    ("arm-lite-fp32", "needs an ARM device"),
])
def test_a_target_this_machine_cannot_run_is_refused_with_the_reason(artifacts, tmp_path,
                                                                    profile_name, reason):
    from quantkit.targets.profile import load_profile

    folder = tmp_path / profile_name
    shutil.copytree(artifacts["intel-cpu-fp32"], folder)
    profile = load_profile(profile_name)
    (folder / "profile.json").write_text(json.dumps(profile.to_dict()))
    with pytest.raises(QuantkitError, match=f"cannot serve .*target {profile_name} does not run "
                                            f"on this machine: .*{reason}"):
        source_from_path(folder)


def test_a_folder_that_is_neither_bundle_nor_artifact_is_refused(tmp_path):
    with pytest.raises(QuantkitError, match="no such bundle folder"):
        source_from_path(tmp_path / "missing")
    with pytest.raises(QuantkitError, match="neither a release bundle .*manifest.json"):
        source_from_path(tmp_path)


# ---- the port, and serve() end to end -----------------------------------------------------

def test_a_busy_port_is_refused_before_anything_heavy_loads(artifacts):
    """The message names port and host, and neither Paddle nor FastAPI was imported."""
    from click.testing import CliRunner

    from quantkit.serving.cli_command import serve_command

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        script = ("import sys, quantkit\n"
                  "from quantkit.errors import QuantkitError\n"
                  "from quantkit.serving.server import serve\n"
                  "try:\n    serve(sys.argv[1], port=int(sys.argv[2]))\n"
                  "except QuantkitError as exc:\n    print(exc)\n"
                  "print(sorted(m for m in ('paddle', 'onnxruntime', 'fastapi', 'uvicorn') "
                  "if m in sys.modules))\n")
        done = subprocess.run([sys.executable, "-c", script, str(artifacts["intel-cpu-fp32"]),
                               str(port)], capture_output=True, text=True, timeout=60)
        assert done.stdout.splitlines() == [
            f"port {port} on 127.0.0.1 is in use: stop the other server or pick another --port",
            "[]"], done.stderr
        result = CliRunner().invoke(serve_command, ["/no/such/bundle", "--port", str(port)])
        assert result.exit_code == 2
        assert result.stderr.strip() == (f"error: port {port} on 127.0.0.1 is in use: stop the "
                                         "other server or pick another --port")


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serve_runs_a_bundle_archive_and_stops_cleanly(bundle, images, tmp_path, stop):
    """serve() end to end: the .tar.gz is extracted to a temporary folder, removed at exit
    (Ctrl-C, or SIGTERM from systemd or docker stop)."""
    archive = bundle.with_name(bundle.name + ".tar.gz")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    script = ("import sys, quantkit\nfrom quantkit.serving.server import serve\n"
              "serve(sys.argv[1], port=int(sys.argv[2]), workers=1, threads=1, "
              "access_log=False)\n")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    process = subprocess.Popen([sys.executable, "-c", script, str(archive), str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "TMPDIR": str(scratch)})
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = get_json(port, "/v1/health")
                break
            except OSError:
                assert process.poll() is None, process.communicate()[1]
                assert time.monotonic() < deadline, "server did not come up in 60 s"
                time.sleep(0.2)
        assert health["status"] == "ok" and health["model"] == "intel-cpu-fp32"
        assert len(list(scratch.iterdir())) == 1  # the extracted bundle
        status, answer = predict_json(port, images[0].tolist())
        assert status == 200 and len(answer["outputs"][0][0]) == 10
    finally:
        process.send_signal(stop)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert f"quantkit serving intel-cpu-fp32 from {archive} on http://127.0.0.1:{port} " \
           "(1 worker, no dynamic batching)" in stderr
    assert "Traceback" not in stderr
    assert list(scratch.iterdir()) == []


# ---- load: many keep-alive clients at once ------------------------------------------------

def load(port: int, images: np.ndarray, expected: list[np.ndarray], clients: int = 8,
         requests: int = 200, atol: float = 1e-6) -> list[str]:
    """Every client thread sends `requests` predictions on one keep-alive connection;
    returns the problems seen (empty when every answer was a 200 and correct)."""
    def client(index: int) -> list[str]:
        problems = []
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        for step in range(requests):
            pick = (index * requests + step) % len(images)
            status, answer = predict_json(port, images[pick].tolist(), conn)
            if status != 200:
                problems.append(f"client {index} request {step}: {status} {answer}")
            elif not np.allclose(answer["outputs"][0], expected[pick], atol=atol, rtol=0):
                problems.append(f"client {index} request {step}: wrong answer for image {pick}")
        conn.close()
        return problems

    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        return [problem for problems in pool.map(client, range(clients)) for problem in problems]


def test_concurrent_load_8_clients_x_200_requests(artifacts, images):
    folder = artifacts["intel-cpu-fp32"]
    expected = direct_outputs(folder, images)
    with running(source_from_path(folder, threads=1), workers=2) as server:
        problems = load(server.port, images, expected)
        assert problems == [], problems[:5]
        health = get_json(server.port, "/v1/health")
    assert health["status"] == "ok" and health["workers_alive"] == 2
    assert health["requests"] == 1600 and health["model_runs"] == 1600
    assert health["errors"] == 0 and health["rejected"] == 0


def test_dynamic_batching_gives_the_unbatched_answers(artifacts, images):
    folder = artifacts["intel-cpu-fp32"]
    expected = direct_outputs(folder, images)
    with running(source_from_path(folder, threads=1), workers=1, max_batch=16,
                 max_wait_ms=5) as server:
        problems = load(server.port, images, expected, clients=8, requests=40, atol=1e-5)
        assert problems == [], problems[:5]
        health = get_json(server.port, "/v1/health")
    assert health["requests"] == 320 and health["errors"] == 0
    assert health["batching"]["enabled"] and health["batching"]["disabled_reason"] is None
    assert health["model_runs"] == health["batching"]["batches"] < health["requests"]
    assert health["rows_run"] == 320

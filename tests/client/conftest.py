"""Client tests talk to a real sisguard server running in a background thread (its own event
loop), so that blocking ``Client`` calls and ``AsyncClient`` calls from the test's loop both work."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from support.server import write_config

from sisguard.client import AsyncClient, Client
from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb
from sisguard.proto.sisguard.v1 import sisguard_pb2_grpc as pb_grpc
from sisguard.server.app import App
from sisguard.server.config import default_config_path, load_settings
from sisguard.wire import to_tensor

CLASSES = 10


class ServerThread:
    """A sisguard App served from a thread; ``start()`` returns once models are loaded."""

    def __init__(self, config: Path | None, **overrides: Any) -> None:
        self.settings = load_settings(config, **overrides)
        self.port: int | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> ServerThread:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self._thread.start()
        if not self._ready.wait(60):
            raise RuntimeError("server did not start within 60 s")
        if self._error is not None:
            raise self._error
        return self

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        app = App(self.settings)
        try:
            self.port = await app.start()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        await self._stop.wait()
        await app.stop(grace=0.2)

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        if self._loop is not None and self._stop is not None and self._thread is not None:
            if self._thread.is_alive():
                self._loop.call_soon_threadsafe(self._stop.set)
                self._thread.join(30)
            self._thread = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def free_port() -> int:
    """A loopback port nothing listens on (right now)."""
    return _free_port()


@pytest.fixture(scope="session")
def server_thread() -> type[ServerThread]:
    """The ServerThread class, for fixtures of other scopes and settings."""
    return ServerThread


@pytest.fixture(scope="session")
def mini_config(tmp_path_factory: pytest.TempPathFactory, model_pair: tuple[Path, Path]) -> Path:
    dense, pruned = model_pair
    return write_config(
        tmp_path_factory.mktemp("client-config"),
        [
            {
                "name": "mini",
                "dense": str(dense),
                "pruned": str(pruned),
                "output_kind": "logits",
                "class_labels": [str(i) for i in range(CLASSES)],
                "max_batch_size": 8,
                "explain": {"threshold": 0.5, "threshold_relative": True, "features": "pixel"},
            }
        ],
        runtime={"providers": ["cpu"], "intra_op_threads": 1},
    )


@pytest.fixture(scope="session")
def server(mini_config: Path) -> Iterator[ServerThread]:
    """The "mini" pair ([1, 8, 8] float32, 10 classes) on a free port, for the whole session."""
    s = ServerThread(mini_config).start()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def address(server: ServerThread) -> str:
    return server.address


@pytest.fixture(scope="session")
def digits_server() -> Iterator[ServerThread]:
    """The bundled default pair "digits" on a free port."""
    if not (default_config_path().parent / "models" / "digits" / "dense.onnx").exists():
        pytest.skip("the bundled digits pair is not built")
    s = ServerThread(None, port=0, metrics_port=0, runtime={"providers": ["cpu"]}).start()
    yield s
    s.stop()


# -- a scripted fake server: every status code, slow calls, flaky calls ---------------------------


class Scripted(pb_grpc.SISGuardServicer):
    """A SISGuard servicer that fails or stalls as scripted, then answers a fixed pair "fake"
    (input [2] float32, 2 classes). ``script[method]`` is a list of steps consumed one per call:
    a ``(grpc.StatusCode, details)`` aborts the call, a float sleeps that many seconds first."""

    def __init__(self) -> None:
        self.script: dict[str, list[Any]] = {}
        self.calls: Counter[str] = Counter()
        self.metadata: list[dict[str, str]] = []
        self.lock = threading.Lock()

    def _step(self, method: str, context: grpc.ServicerContext) -> Any:
        """Follow the script: sleep (a number), abort (code, details), or answer this response (a message)."""
        with self.lock:
            self.calls[method] += 1
            self.metadata.append(dict(context.invocation_metadata()))
            plan = self.script.get(method)
            step = plan.pop(0) if plan else None
        if isinstance(step, float | int):
            time.sleep(step)
        elif isinstance(step, tuple):
            context.abort(step[0], step[1])
        return step

    def ListModels(self, request: Any, context: grpc.ServicerContext) -> Any:
        self._step("ListModels", context)
        return pb.ListModelsResponse(pairs=[pb.PairInfo(name="fake", input_shape=[2], input_dtype=pb.FLOAT32)])

    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:
        if isinstance(answer := self._step("Predict", context), pb.PredictResponse):
            return answer
        rows = request.inputs.shape[0]
        probs = np.full((rows, 2), 0.5, np.float32)
        v = pb.VariantPrediction(probabilities=to_tensor(probs), top1=[0] * rows, top1_probability=[0.5] * rows)
        return pb.PredictResponse(
            pair=request.pair, dense=v, pruned=v, top1_agree=[True] * rows, confidence_gap=[0.0] * rows
        )

    def _result(self, request: Any) -> Any:
        mask = to_tensor(np.array([True, False]))
        v = pb.VariantExplanation(status=pb.FOUND, sis=[pb.SubsetExplanation(features=[0], score=0.9, mask=mask)])
        return pb.ExplainResponse(pair=request.pair, target=0, threshold=0.5, num_features=2, dense=v, pruned=v)

    def Explain(self, request: Any, context: grpc.ServicerContext) -> Any:
        if isinstance(answer := self._step("Explain", context), pb.ExplainResponse):
            return answer
        return self._result(request)

    def ExplainStream(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        self._step("ExplainStream", context)
        yield pb.ExplainEvent(progress=pb.ExplainProgress(variant=pb.DENSE, features_left=1, evaluations=3))
        yield pb.ExplainEvent(result=self._result(request))


class FakeServer:
    def __init__(self, port: int = 0) -> None:
        self.servicer = Scripted()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        pb_grpc.add_SISGuardServicer_to_server(self.servicer, self.server)
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        self.server.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.stop(None)


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    s = FakeServer()
    yield s
    s.stop()


# -- one test body for both clients ----------------------------------------------------------------
class SyncDriver:
    kind = "sync"

    def __init__(self, address: str, **options: Any) -> None:
        self.client = Client(address, **options)

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(getattr(self.client, method), *args, **kwargs)

    async def stream(self, *args: Any, **kwargs: Any) -> list[Any]:
        return await asyncio.to_thread(lambda: list(self.client.explain_stream(*args, **kwargs)))

    async def close(self) -> None:
        self.client.close()


class AsyncDriver:
    kind = "async"

    def __init__(self, address: str, **options: Any) -> None:
        self.client = AsyncClient(address, **options)

    async def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return await getattr(self.client, method)(*args, **kwargs)

    async def stream(self, *args: Any, **kwargs: Any) -> list[Any]:
        return [event async for event in self.client.explain_stream(*args, **kwargs)]

    async def close(self) -> None:
        await self.client.close()


DRIVERS = {"sync": SyncDriver, "async": AsyncDriver}


@pytest.fixture(params=["sync", "async"])
async def connect(request: pytest.FixtureRequest) -> AsyncIterator[Callable[..., Any]]:
    """``connect(address, **options)``: a driver over Client or AsyncClient (both are tested)."""
    made: list[Any] = []

    def make(address: str, **options: Any) -> Any:
        driver = DRIVERS[request.param](address, **options)
        made.append(driver)
        return driver

    yield make
    for d in made:
        await d.close()


@pytest.fixture
def start_server() -> Iterator[Callable[..., ServerThread]]:
    """``start_server(config, **overrides)``: a ServerThread started now, stopped after the test."""
    started: list[ServerThread] = []

    def start(config: Path | None, **overrides: Any) -> ServerThread:
        s = ServerThread(config, **overrides).start()
        started.append(s)
        return s

    yield start
    for s in started:
        s.stop()

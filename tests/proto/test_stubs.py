"""The committed stubs are what the generator makes, and they run on protobuf 4.25 through 7.x."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

ROUND_TRIP = textwrap.dedent(
    """
    import google.protobuf
    from sisguard.proto.sisguard.v1 import sisguard_pb2 as pb, sisguard_pb2_grpc
    from sisguard.proto.inference import grpc_service_pb2 as ip, grpc_service_pb2_grpc
    req = pb.ExplainRequest(pair="p", threshold_relative=0.5, max_sis=2)
    again = pb.ExplainRequest.FromString(req.SerializeToString())
    assert again.WhichOneof("threshold") == "threshold_relative" and again.max_sis == 2
    m = ip.ModelInferRequest(model_name="x", raw_input_contents=[b"ab"])
    assert ip.ModelInferRequest.FromString(m.SerializeToString()).raw_input_contents == [b"ab"]
    assert sisguard_pb2_grpc.SISGuardStub and grpc_service_pb2_grpc.GRPCInferenceServiceStub
    print(google.protobuf.__version__)
    """
)


def test_committed_stubs_match_the_generator() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "proto" / "generate.py"), "--check"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("version", ["4.25.8", "5.29.5", "7.36.2"])
def test_stubs_import_on_protobuf(tmp_path: Path, version: str) -> None:
    env = tmp_path / "venv"
    venv.create(env, with_pip=True, system_site_packages=True)  # grpcio from the host, protobuf pinned here
    python = env / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", f"protobuf=={version}"],
        check=True,
        capture_output=True,
        timeout=300,
    )
    pkg = tmp_path / "path" / "sisguard"
    pkg.mkdir(parents=True)
    (pkg / "proto").symlink_to(ROOT / "proto")
    proc = subprocess.run(
        [str(python), "-c", ROUND_TRIP],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PYTHONPATH": str(tmp_path / "path"), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == version

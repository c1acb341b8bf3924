"""sisguard.sis stands alone: importing it loads neither the server, the client nor gRPC."""

from __future__ import annotations

import subprocess
import sys


def test_engine_imports_nothing_of_server_client_or_grpc() -> None:
    code = (
        "import sys, sisguard.sis\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('sisguard.server', 'sisguard.client', 'grpc', "
        "'onnxruntime', 'google.protobuf')))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_engine_errors_are_its_own() -> None:
    from sisguard import sis

    assert issubclass(sis.InvalidInput, sis.SISError)
    assert issubclass(sis.InvalidInput, ValueError)
    assert issubclass(sis.BudgetExceeded, sis.SISError)
    assert issubclass(sis.ScoringError, sis.SISError)

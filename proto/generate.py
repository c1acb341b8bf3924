"""Regenerate the Python stubs of the .proto files in this folder.

The stubs are committed. They are generated with protoc 25 (grpcio-tools 1.62.3), whose
output carries no protobuf runtime-version check, so they import on protobuf 4.25 through 7.x;
newer generators would pin the runtime to their own major version. Run:

    python proto/generate.py           # rewrite the stubs
    python proto/generate.py --check   # exit 1 if the committed stubs differ from a fresh run

The generator runs in a throw-away virtual environment so that its old protobuf never meets the
project's environment. It is cached outside the checkout, in $SISGUARD_PROTOC_ENV or else
$XDG_CACHE_HOME/sisguard/protoc (~/.cache/sisguard/protoc); making it needs the package index
once. Exit status 3 means the generator could not be installed.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

GRPCIO_TOOLS = "grpcio-tools==1.62.3"
HERE = Path(__file__).resolve().parent
SOURCES = ["sisguard/v1/sisguard.proto", "inference/grpc_service.proto"]
# protoc writes imports as they appear in the source tree (``from sisguard.v1 import ...``);
# the stubs live inside the ``sisguard.proto`` package, so those imports are rewritten.
IMPORT_REWRITES = {
    "from sisguard.v1 import": "from sisguard.proto.sisguard.v1 import",
    "from inference import": "from sisguard.proto.inference import",
}


class GeneratorUnavailable(Exception):
    """grpcio-tools could not be installed (no index reachable, no wheel for this platform)."""


def _env_dir() -> Path:
    if os.environ.get("SISGUARD_PROTOC_ENV"):
        return Path(os.environ["SISGUARD_PROTOC_ENV"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "sisguard" / "protoc"


def _generator_python() -> Path:
    env_dir = _env_dir()
    python = env_dir / "bin" / "python"
    marker = env_dir / GRPCIO_TOOLS
    if not marker.exists():
        shutil.rmtree(env_dir, ignore_errors=True)
        venv.create(env_dir, with_pip=True)
        proc = subprocess.run(
            [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", GRPCIO_TOOLS],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            shutil.rmtree(env_dir, ignore_errors=True)
            last = (proc.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise GeneratorUnavailable(f"cannot install {GRPCIO_TOOLS}: {last}")
        marker.touch()
    return python


def generate(out_dir: Path) -> list[Path]:
    python = _generator_python()
    subprocess.run(
        [str(python), "-m", "grpc_tools.protoc", f"-I{HERE}", f"--python_out={out_dir}",
         f"--pyi_out={out_dir}", f"--grpc_python_out={out_dir}", *SOURCES],
        check=True,
    )
    written = sorted(p for p in out_dir.rglob("*") if p.suffix in {".py", ".pyi"})
    for path in written:
        text = path.read_text()
        for old, new in IMPORT_REWRITES.items():
            text = text.replace(old, new)
        path.write_text(text)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the committed stubs only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        written = generate(out)
        differ = []
        for path in written:
            rel = path.relative_to(out)
            target = HERE / rel
            if args.check:
                if not target.exists() or not filecmp.cmp(path, target, shallow=False):
                    differ.append(str(rel))
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, target)
        for pkg in {HERE, *(HERE / Path(s).parent for s in SOURCES), HERE / "sisguard"}:
            init = pkg / "__init__.py"
            if not init.exists() and not args.check:
                init.write_text("")
        if differ:
            print("stubs out of date (run python proto/generate.py):", ", ".join(differ), file=sys.stderr)
            return 1
    print("stubs up to date" if args.check else "stubs written")
    return 0


if __name__ == "__main__":
    os.chdir(HERE)
    try:
        sys.exit(main())
    except GeneratorUnavailable as exc:
        print(exc, file=sys.stderr)
        sys.exit(3)

"""Build one Lambda zip per handler, reproducibly: `python scripts/package.py [--arch x86_64|arm64]`.

For each function of `FUNCTIONS`:

1. its pinned requirements (`src/coinlake/aws/requirements/<fn>.txt`, every package with
   `==`, made from `<fn>.in` by `--lock`) are installed with `--no-deps` for CPython 3.12
   on manylinux (the Lambda runtime), from the wheel cache `build/.wheels/<arch>/` (filled
   from the package index on a miss, so a re-run needs no network);
2. what the runtime provides (`RUNTIME_PROVIDED`: boto3 and its dependencies) is left out,
   and so are console scripts (`bin/`, their shebangs name the build machine's Python);
3. the whole `coinlake` package is copied from `src/` (without caches and these lists);
4. the tree is zipped with sorted entries, a fixed time (1980-01-01 00:00) and fixed
   permissions (0644), so the same inputs give the same bytes and the same SHA-256.

Writes `<out>/<fn>.zip` and `<out>/packages.json` (name, zipped and unzipped bytes, SHA-256
per function) and prints the same table. Exit status 1 if a package is over its limit
(`LIMITS`: zipped for a direct upload, unzipped for Lambda).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SRC = REPO / "src" / "coinlake"
REQUIREMENTS = SRC / "aws" / "requirements"
FUNCTIONS = ("coinbase_api_call", "lambda_triggering_sns", "query_athena")
PYTHON_VERSION = "3.12"
PLATFORMS = {
    "x86_64": ("manylinux2014_x86_64", "manylinux_2_28_x86_64"),
    "arm64": ("manylinux2014_aarch64", "manylinux_2_28_aarch64"),
}
#: Distributions the Lambda Python runtime ships (boto3 and what it needs): never packaged.
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "six", "urllib3"}
MB = 1024 * 1024
#: (zipped, unzipped) byte limits: the targets for each function's package.
LIMITS = {
    "coinbase_api_call": (10 * MB, 250 * MB),
    "lambda_triggering_sns": (10 * MB, 250 * MB),
    "query_athena": (50 * MB, 250 * MB),
}
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o644
SKIP_DIRS = {"__pycache__", "requirements"}


def pip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)


def target_flags(arch: str) -> list[str]:
    flags = ["--only-binary=:all:", "--python-version", PYTHON_VERSION, "--implementation", "cp"]
    for platform in PLATFORMS[arch]:
        flags += ["--platform", platform]
    return flags


def canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


# ---------------------------------------------------------------------- lock


def lock(fn: str, arch: str) -> list[str]:
    """Resolve `<fn>.in` for the runtime's platform; write `<fn>.txt` (sorted `name==version`)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        args = ["install", "--quiet", "--dry-run", "--ignore-installed", "--report", str(report)]
        done = pip(*args, *target_flags(arch), "-r", str(REQUIREMENTS / f"{fn}.in"))
        if done.returncode:
            raise SystemExit(f"pip could not resolve {fn}.in:\n{done.stderr}")
        installs = json.loads(report.read_text())["install"]
    pins = sorted(
        f"{canonical(i['metadata']['name'])}=={i['metadata']['version']}"
        for i in installs
        if canonical(i["metadata"]["name"]) not in RUNTIME_PROVIDED
    )
    header = f"# Made by `python scripts/package.py --lock` from {fn}.in: edit that, then lock again.\n"
    (REQUIREMENTS / f"{fn}.txt").write_text(header + "\n".join(pins) + "\n")
    return pins


# ---------------------------------------------------------------------- build


def install(requirements: list[str], arch: str, tree: Path, wheels: Path, *, deps: bool = False) -> None:
    """Install `requirements` (pip arguments) into `tree` for the runtime's platform, from
    the wheel cache `wheels` (filled from the index on a miss); no bytecode, no `bin/`."""
    flags = [*target_flags(arch), *([] if deps else ["--no-deps"]), *requirements]
    cached = ["--no-index", "--find-links", str(wheels)]
    if pip("download", "--quiet", "--dest", str(wheels), *cached, *flags).returncode:
        done = pip("download", "--quiet", "--dest", str(wheels), *flags)
        if done.returncode:
            raise SystemExit(f"pip could not download {' '.join(requirements)}:\n{done.stderr}")
    args = ["install", "--quiet", "--no-compile", "--no-warn-script-location", "--target", str(tree)]
    done = pip(*args, *cached, *flags)
    if done.returncode:
        raise SystemExit(f"pip could not install {' '.join(requirements)}:\n{done.stderr}")
    shutil.rmtree(tree / "bin", ignore_errors=True)
    for pycache in sorted(tree.rglob("__pycache__")):
        shutil.rmtree(pycache)


def runtime_tree(tree: Path, arch: str = "x86_64", wheels: Path | None = None) -> Path:
    """What the Lambda runtime adds to the path (boto3 and its dependencies), installed in
    `tree`: for tests that import a package as Lambda would."""
    install(["boto3"], arch, tree, wheels or REPO / "build" / ".wheels" / arch, deps=True)
    return tree


def copy_source(tree: Path) -> None:
    shutil.copytree(SRC, tree / "coinlake", ignore=lambda d, names: [n for n in names if n in SKIP_DIRS])


def files_of(tree: Path) -> list[tuple[str, Path]]:
    """Every file under `tree` as (archive name, path), sorted by name."""
    out = []
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames.sort()
        for name in filenames:
            path = Path(dirpath) / name
            out.append((path.relative_to(tree).as_posix(), path))
    return sorted(out)


def write_zip(tree: Path, dest: Path) -> int:
    """Zip `tree` into `dest` deterministically; returns the unzipped size in bytes."""
    unzipped = 0
    with zipfile.ZipFile(dest, "w") as zf:
        for name, path in files_of(tree):
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # unix: the mode below applies
            info.external_attr = (0o100000 | FILE_MODE) << 16
            data = path.read_bytes()
            unzipped += len(data)
            zf.writestr(info, data, compresslevel=9)
    return unzipped


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(fn: str, arch: str, out: Path, wheels: Path) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix=f"coinlake-{fn}-") as tmp:
        tree = Path(tmp) / "tree"
        install(["-r", str(REQUIREMENTS / f"{fn}.txt")], arch, tree, wheels)
        copy_source(tree)
        dest = out / f"{fn}.zip"
        unzipped = write_zip(tree, dest)
    return {"function": fn, "arch": arch, "zipped": dest.stat().st_size, "unzipped": unzipped, "sha256": sha256(dest)}


def over_limit(row: dict[str, object]) -> list[str]:
    zipped_max, unzipped_max = LIMITS[str(row["function"])]
    problems = []
    if int(row["zipped"]) > zipped_max:  # type: ignore[call-overload]
        problems.append(f"{row['function']}: {row['zipped']} bytes zipped > {zipped_max}")
    if int(row["unzipped"]) > unzipped_max:  # type: ignore[call-overload]
        problems.append(f"{row['function']}: {row['unzipped']} bytes unzipped > {unzipped_max}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "build", help="where the zips go (default: build/)")
    parser.add_argument("--arch", choices=sorted(PLATFORMS), default="x86_64")
    parser.add_argument("--wheels", type=Path, help="wheel cache (default: build/.wheels/<arch>)")
    parser.add_argument("--lock", action="store_true", help="re-resolve each <fn>.in into <fn>.txt, then stop")
    parser.add_argument("functions", nargs="*", metavar="function", help=f"of {', '.join(FUNCTIONS)} (default: all)")
    args = parser.parse_args(argv)
    functions = args.functions or list(FUNCTIONS)
    unknown = sorted(set(functions) - set(FUNCTIONS))
    if unknown:
        parser.error(f"unknown functions: {', '.join(unknown)}")
    if args.lock:
        for fn in functions:
            print(f"{fn}: {len(lock(fn, args.arch))} packages pinned")
        return 0
    wheels = args.wheels or REPO / "build" / ".wheels" / args.arch
    wheels.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = [build(fn, args.arch, args.out, wheels) for fn in functions]
    (args.out / "packages.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"{'function':<24}{'zipped':>10}{'unzipped':>11}  sha256 ({args.arch}, Python {PYTHON_VERSION})")
    for r in rows:
        print(f"{r['function']:<24}{r['zipped'] / MB:>8.2f}MB{r['unzipped'] / MB:>9.2f}MB  {r['sha256']}")
    problems = [p for r in rows for p in over_limit(r)]
    for p in problems:
        print(f"over the limit: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())

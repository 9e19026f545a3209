"""``make test-kernels``: sysward's kernel tests on other kernels, each booted under qemu.

Everything comes from Debian packages and PyPI, and is cached in the build directory:

- the kernels: Debian's signed cloud kernels, fetched with apt through a private apt
  configuration (its own sources list, lists and cache under the build directory; the
  system's sources are never touched), unpacked with ``dpkg-deb -x``;
- the guest's root filesystem: a debootstrap of bookworm (python3, libbpf1, bpftool, tini)
  plus the project's Python dependencies from PyPI, packed as an initramfs (the kernel
  unpacks it into RAM, so no disk driver or module is needed on any kernel);
- the project itself: this source tree (with its built BPF objects), packed on every run
  as a second initramfs appended to the first.

Each kernel boots under qemu with TCG (software emulation: KVM does not work on the
project's machines), runs the subset of tests/kernel listed in tests.txt, and reports on its
second serial port.  One line per kernel:
``kernel <uname -r>: N passed, M failed, K skipped (bpf lsm: yes|no)``.
The exit status is 1 when any test failed or any kernel did not boot and report.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
MIRROR = "http://deb.debian.org/debian"
SECURITY = "http://deb.debian.org/debian-security"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
# The suites apt may fetch kernels from (private configuration: kernels only, never installed).
SUITES = [(MIRROR, "bookworm"), (MIRROR, "bookworm-updates"), (SECURITY, "bookworm-security"),
          (MIRROR, "bookworm-backports"), (MIRROR, "bullseye"), (SECURITY, "bullseye-security")]
# Debian packages of the guest (debootstrap --variant=minbase adds the essential ones).
GUEST_DEBS = ["python3", "libbpf1", "bpftool", "iproute2", "procps", "tini",
              "clang", "libbpf-dev"]  # clang, libbpf-dev: tests that compile their own program
# Python packages the kernel tests import beyond the project's own dependencies.
GUEST_PY_EXTRA = ["pytest", "pytest-timeout"]
# Trees the guest does not need: smaller initramfs, faster unpacking under emulation.
TRIM = ["usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale",
        "var/cache/apt", "var/lib/apt/lists", "usr/share/zoneinfo"]
MARK_BOOT = "KMATRIX-BOOTED "
MARK_RESULT = "KMATRIX-RESULT "


def log(msg: str) -> None:
    print(f"test-kernels: {msg}", file=sys.stderr, flush=True)


def run(cmd: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=True, text=True, **kw)  # type: ignore[call-overload,no-any-return]


@dataclass(slots=True)
class KernelSpec:
    """One line of kernels.txt: a Debian (meta)package, the suite to take it from, and the
    file listing the tests its guest runs."""

    package: str
    suite: str
    tests: str = "tests.txt"

    @classmethod
    def parse(cls, line: str) -> KernelSpec:
        words = line.split()
        package, _, suite = words[0].partition("/")
        return cls(package, suite, *words[1:2])


@dataclass(slots=True)
class Kernel:
    vmlinuz: Path
    tests: str  # the name of the test list, as the guest finds it under /opt/kmatrix/lists

    @property
    def name(self) -> str:
        return self.vmlinuz.parent.name


def read_list(path: Path) -> list[str]:
    return [s for s in (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
            if s]


# --------------------------------------------------------------------------------------------
# kernels, through a private apt configuration


class PrivateApt:
    def __init__(self, base: Path) -> None:
        self.base = base
        (base / "lists" / "partial").mkdir(parents=True, exist_ok=True)
        (base / "cache" / "archives" / "partial").mkdir(parents=True, exist_ok=True)
        (base / "preferences.d").mkdir(exist_ok=True)
        self.sources = base / "sources.list"
        text = "".join(f"deb [signed-by={KEYRING}] {uri} {suite} main\n" for uri, suite in SUITES)
        if not self.sources.exists() or self.sources.read_text() != text:
            self.sources.write_text(text)
        self.opts = [
            "-o", f"Dir::Etc::SourceList={self.sources}", "-o", "Dir::Etc::SourceParts=/dev/null",
            "-o", f"Dir::State::Lists={base / 'lists'}", "-o", f"Dir::Cache={base / 'cache'}",
            "-o", "Dir::Etc::Preferences=/dev/null",
            "-o", f"Dir::Etc::PreferencesParts={base / 'preferences.d'}",
            "-o", "APT::Sandbox::User=root", "-qq",
        ]
        self._updated = False

    def update(self) -> None:
        if not self._updated:
            run(["apt-get", *self.opts, "update"], stdout=subprocess.DEVNULL)
            self._updated = True

    def resolve(self, spec: KernelSpec) -> str:
        """The concrete linux-image package a metapackage points to in that suite."""
        out = run(["apt-cache", *self.opts, "show", f"{spec.package}/{spec.suite}"],
                  capture_output=True).stdout
        for line in out.splitlines():
            if line.startswith("Depends:"):
                m = re.search(r"(linux-image-[0-9][^\s,(]*)", line)
                if m:
                    return m.group(1)
        if spec.package.startswith("linux-image-") and spec.package[12:13].isdigit():
            return spec.package
        raise SystemExit(f"test-kernels: {spec.package}/{spec.suite} names no kernel package")

    def download(self, package: str, dest: Path) -> Path:
        dest.mkdir(parents=True, exist_ok=True)
        run(["apt-get", *self.opts, "download", package], cwd=dest, stdout=subprocess.DEVNULL)
        debs = sorted(dest.glob(f"{package}_*.deb"))
        if not debs:
            raise SystemExit(f"test-kernels: apt-get download {package} left no .deb")
        return debs[-1]


def fetch_kernels(build: Path, specs: list[KernelSpec], refresh: bool) -> list[Kernel]:
    """The vmlinuz of each kernel, downloaded and unpacked once."""
    apt = PrivateApt(build / "apt")
    resolved_file = build / "kernels.resolved"
    resolved: dict[str, str] = {}
    if resolved_file.exists() and not refresh:
        resolved = json.loads(resolved_file.read_text())
    out = []
    for spec in specs:
        key = f"{spec.package}/{spec.suite}"
        if key not in resolved:
            apt.update()
            resolved[key] = apt.resolve(spec)
        pkg = resolved[key]
        kdir = build / "kernels" / pkg
        vmlinuz = kdir / "vmlinuz"
        if not vmlinuz.exists():
            apt.update()
            log(f"fetching {pkg} ({key})")
            with tempfile.TemporaryDirectory(dir=build) as tmp:
                deb = apt.download(pkg, Path(tmp))
                unpacked = Path(tmp) / "x"
                run(["dpkg-deb", "-x", str(deb), str(unpacked)])
                images = sorted((unpacked / "boot").glob("vmlinuz-*"))
                if not images:
                    raise SystemExit(f"test-kernels: {pkg} has no /boot/vmlinuz-*")
                kdir.mkdir(parents=True, exist_ok=True)
                for cfg in (unpacked / "boot").glob("config-*"):
                    shutil.copy2(cfg, kdir / "config")
                shutil.copy2(images[0], vmlinuz)
        out.append(Kernel(vmlinuz, spec.tests))
    resolved_file.write_text(json.dumps(resolved, indent=1))
    return out


# --------------------------------------------------------------------------------------------
# the guest's root filesystem


def project_dependencies() -> list[str]:
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return [*meta["project"]["dependencies"], *GUEST_PY_EXTRA]


def base_key(deps: list[str]) -> str:
    h = hashlib.sha256()
    for part in [*GUEST_DEBS, "|", *deps, "|", *TRIM, sys.version.split()[0]]:
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:12]


def cpio(tree: Path, out: Path) -> None:
    """Pack ``tree`` as an uncompressed newc archive (the kernel unpacks it as the rootfs;
    uncompressed because decompressing under emulation costs more than reading)."""
    names = subprocess.run(["find", ".", "-mindepth", "1"], cwd=tree, check=True,
                           capture_output=True).stdout
    with out.open("wb") as f:
        subprocess.run(["cpio", "--quiet", "-o", "-H", "newc", "-R", "0:0"], cwd=tree,
                       input=names, stdout=f, check=True)


def build_base(build: Path) -> Path:
    """The cached initramfs of the guest's system: bookworm, python3 and the project's deps."""
    deps = project_dependencies()
    key = base_key(deps)
    image = build / f"rootfs-{key}.cpio"
    if image.exists():
        return image
    for old in build.glob("rootfs-*.cpio"):
        old.unlink()
    log(f"building the guest root filesystem (debootstrap bookworm: {', '.join(GUEST_DEBS)})")
    t0 = time.monotonic()
    tree = build / "rootfs.tmp"
    if tree.exists():
        shutil.rmtree(tree)
    run(["debootstrap", "--variant=minbase", f"--include={','.join(GUEST_DEBS)}", "bookworm",
         str(tree), MIRROR], stdout=subprocess.DEVNULL)
    for rel in TRIM:
        shutil.rmtree(tree / rel, ignore_errors=True)
    target = tree / "opt" / "sysward-deps"
    # The guest runs the same Python minor version as this host (both bookworm), so wheels
    # resolved here install there.
    guest_py = sorted((tree / "usr" / "lib").glob("python3.*"))
    host_py = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if not any(p.name == host_py for p in guest_py):
        raise SystemExit(f"test-kernels: the guest has {[p.name for p in guest_py]}, this host "
                         f"{host_py}; run make test-kernels with bookworm's python3")
    run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "--no-compile", "--target", str(target), *deps])
    run([sys.executable, "-m", "compileall", "-q", "-j", "0", str(target)],
        stdout=subprocess.DEVNULL)
    tmp = image.with_suffix(".tmp")
    cpio(tree, tmp)
    tmp.rename(image)
    shutil.rmtree(tree)
    mib = image.stat().st_size >> 20
    log(f"root filesystem built in {time.monotonic() - t0:.0f} s ({mib} MiB)")
    return image


def build_overlay(build: Path, lists: dict[str, list[str]]) -> Path:
    """The project (source tree with built BPF objects, tests) and /init, as a second archive."""
    tree = build / "overlay.tmp"
    if tree.exists():
        shutil.rmtree(tree)
    proj = tree / "opt" / "sysward"
    for objs in ("sysward.bpf.o", "enforce.bpf.o"):
        if not (ROOT / "src" / "sysward" / "bpf" / objs).exists():
            raise SystemExit(f"test-kernels: src/sysward/bpf/{objs} is not built; run make build")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache", "*.egg-info")
    for rel in ("src", "tests", "bpf"):
        shutil.copytree(ROOT / rel, proj / rel, ignore=ignore)
    shutil.copy2(ROOT / "pyproject.toml", proj / "pyproject.toml")
    run([sys.executable, "-m", "compileall", "-q", "-j", "0", str(proj / "src"),
         str(proj / "tests")], stdout=subprocess.DEVNULL)
    (tree / "opt" / "kmatrix").mkdir(parents=True)
    shutil.copy2(HERE / "summary.py", tree / "opt" / "kmatrix" / "summary.py")
    shutil.copy2(HERE / "guest-init", tree / "init")
    (tree / "opt" / "kmatrix" / "lists").mkdir()
    for name, tests in lists.items():
        (tree / "opt" / "kmatrix" / "lists" / name).write_text(" ".join(tests) + "\n")
    out = build / "overlay.cpio"
    cpio(tree, out)
    shutil.rmtree(tree)
    return out


# --------------------------------------------------------------------------------------------
# booting


@dataclass(slots=True)
class Outcome:
    kernel: Kernel
    line: str
    ok: bool
    seconds: float


def boot(kernel: Kernel, initrd: Path, logs: Path, timeout: float, cpus: int,
         memory: str, cpu_model: str) -> Outcome:
    name = kernel.name
    console = logs / f"{name}.console.log"
    report = logs / f"{name}.tests.log"
    for f in (console, report):
        f.unlink(missing_ok=True)
    cmd = ["qemu-system-x86_64", "-accel", "tcg,thread=multi", "-cpu", cpu_model, "-smp", str(cpus),
           "-m", memory, "-display", "none", "-no-reboot", "-monitor", "none",
           "-serial", f"file:{console}", "-serial", f"file:{report}",
           "-kernel", str(kernel.vmlinuz), "-initrd", str(initrd),
           "-append", f"console=ttyS0 panic=-1 rdinit=/init quiet loglevel=4 "
                      f"sysward.tests={kernel.tests}"]
    t0 = time.monotonic()
    try:
        subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.STDOUT, timeout=timeout, check=False)
        timed_out = False
    except subprocess.TimeoutExpired:
        timed_out = True
    took = time.monotonic() - t0
    text = report.read_text(errors="replace") if report.exists() else ""
    uname = next((ln[len(MARK_BOOT):].strip() for ln in text.splitlines()
                  if ln.startswith(MARK_BOOT)), None)
    result = next((ln[len(MARK_RESULT):] for ln in text.splitlines()
                   if ln.startswith(MARK_RESULT)), None)
    if result is None:
        what = (f"did not boot (see {console})" if uname is None
                else f"booted but reported no result{' in time' if timed_out else ''} "
                     f"(see {report})")
        return Outcome(kernel, f"kernel {uname or name}: {what}", False, took)
    r = json.loads(result)
    line = (f"kernel {r['uname']}: {r['passed']} passed, {r['failed']} failed, "
            f"{r['skipped']} skipped (bpf lsm: {'yes' if r['bpf_lsm'] else 'no'})")
    for fail in r["failures"]:
        log(f"{r['uname']}: FAILED {fail}")
    return Outcome(kernel, line, r["failed"] == 0 and r["passed"] > 0, took)


def main(argv: Iterable[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--build-dir", type=Path, default=ROOT / "build" / "kernel-matrix")
    ap.add_argument("--kernels", type=Path, default=HERE / "kernels.txt")
    ap.add_argument("--tests", type=Path,
                    help="a file of pytest paths that every guest runs instead of its own list")
    ap.add_argument("--only", help="run only kernels whose package name contains this")
    ap.add_argument("--refresh", action="store_true",
                    help="resolve the kernel metapackages again (newest kernel of each suite)")
    ap.add_argument("--parallel", type=int, default=int(os.environ.get("KMATRIX_PARALLEL", 1)))
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--memory", default="2G")
    # Without cx16: 6.12's SLUB frees lists with cmpxchg16b, which multi-threaded TCG did not
    # make atomic here (oopses in kmem_cache_alloc within seconds); without the feature the
    # kernel takes its locked path.
    ap.add_argument("--cpu-model", default=os.environ.get("KMATRIX_CPU", "qemu64,-cx16"))
    ap.add_argument("--timeout", type=float, default=900, help="seconds per kernel")
    args = ap.parse_args(list(argv) if argv is not None else None)
    if os.geteuid() != 0:
        log("needs root (debootstrap, and files owned by root in the guest)")
        return 2
    t0 = time.monotonic()
    build: Path = args.build_dir.resolve()
    build.mkdir(parents=True, exist_ok=True)
    specs = [KernelSpec.parse(s) for s in read_list(args.kernels)]
    kernels = fetch_kernels(build, specs, args.refresh)
    if args.only:
        kernels = [k for k in kernels if args.only in k.name]
    base = build_base(build)
    names = {k.tests for k in kernels}
    if args.tests is not None:
        for k in kernels:
            k.tests = "override"
        lists = {"override": read_list(args.tests)}
    else:
        lists = {n: read_list(HERE / n) for n in names}
    overlay = build_overlay(build, lists)
    initrd = build / "initrd.cpio"
    with initrd.open("wb") as out:
        for part in (base, overlay):  # the kernel unpacks concatenated archives in order
            with part.open("rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)
    logs = build / "logs"
    logs.mkdir(exist_ok=True)
    log(f"ready in {time.monotonic() - t0:.0f} s; booting {len(kernels)} kernels under TCG")
    with ThreadPoolExecutor(max_workers=max(1, args.parallel)) as pool:
        outcomes = list(pool.map(lambda k: boot(k, initrd, logs, args.timeout, args.cpus,
                                                args.memory, args.cpu_model), kernels))
    for o in outcomes:
        print(o.line, flush=True)
        log(f"{o.kernel.name}: {o.seconds:.0f} s")
    log(f"total {time.monotonic() - t0:.0f} s")
    return 0 if outcomes and all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Versions from an image (ADR 0044): a root filesystem tarball (here one made from this host's
own Python and shell, as a distroless Python image would hold them) deployed as a version, whose
sessions run its own system in place of the host's; tarballs that lead out, or hide a link where
the sandbox mounts, are refused."""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from runtime import DeployError, Deployments, Sessions, Settings
from runtime._image import ImageError, untar
from sandbox import BwrapBackend, available
from tests.support.tools import need

pytestmark = pytest.mark.anyio

APP = """
import json, os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class Agent(BaseHTTPRequestHandler):
    def _send(self, answer):
        data = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self._send({"status": "Healthy"})

    def do_POST(self):
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])) or b"{}")
        with open("/etc/image-name") as f:
            image = f.read().strip()
        self._send({"echo": payload, "image": image, "python": sys.version.split()[0],
                    "host_tools": os.path.exists("/usr/bin/bwrap"), "work": os.listdir("/work")})

ThreadingHTTPServer(("0.0.0.0", 8080), Agent).serve_forever()
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _libraries(*binaries: str) -> dict[str, str]:
    """Each shared library the binaries load: the name it is loaded by (in the image: /lib64's
    loader, the others under the multiarch folder the loader searches), and its file on the host."""
    found = {}
    for binary in binaries:
        said = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
        for line in said.splitlines():
            for word in line.split():
                if word.startswith("/"):
                    folder = "usr/lib64" if word.startswith("/lib64/") else "usr/lib/x86_64-linux-gnu"
                    found[f"{folder}/{os.path.basename(word)}"] = os.path.realpath(word)
    return found


def _image(path: Path) -> Path:
    """A root filesystem tarball of this host's Python 3.11 and dash, and the agent in /app."""
    python = os.path.realpath("/usr/bin/python3")
    with tarfile.open(path, "w") as image:

        def add(source: str, name: str) -> None:
            image.add(
                source, name, filter=lambda m: None if "__pycache__" in m.name or "/test/" in m.name else m
            )

        add(python, "usr/bin/python3.11")
        add("/usr/bin/dash", "usr/bin/dash")
        for name, library in _libraries(python, "/usr/bin/dash").items():
            add(library, name)
        add("/usr/lib/python3.11", "usr/lib/python3.11")
        for name, target in (
            ("usr/bin/python3", "python3.11"),
            ("usr/bin/sh", "dash"),
            ("bin", "usr/bin"),
            ("lib", "usr/lib"),
            ("lib64", "usr/lib64"),
        ):
            link = tarfile.TarInfo(name)
            link.type, link.linkname = tarfile.SYMTYPE, target
            image.addfile(link)
        for name, text in (("etc/image-name", "test-image\n"), ("app/main.py", APP)):
            info = tarfile.TarInfo(name)
            info.size = len(text.encode())
            image.addfile(info, io.BytesIO(text.encode()))
    return path


async def test_an_images_version_runs_its_own_system(tmp_path: Path) -> None:
    need(available() is None, f"bubblewrap sandboxes: {available()}")
    deployments = Deployments(tmp_path / "runtimes")
    settings = Settings(entry="python3 /app/main.py")
    version = await deployments.deploy_image("imaged", _image(tmp_path / "image.tar"), settings)
    assert version.image and version.tag == "imaged:1"
    async with Sessions(BwrapBackend(tmp_path / "boxes")).running() as live:
        session = await live.session(version, "i" * 40)
        async with session.invoke(json.dumps({"hello": "image"}).encode()) as reply:
            found = json.loads(await reply.aread())
    assert found["echo"] == {"hello": "image"} and found["image"] == "test-image"
    assert found["python"].startswith("3.11") and found["host_tools"] is False  # (the image's /usr only)


async def test_images_that_lead_out_or_lack_what_the_runtime_needs_are_refused(tmp_path: Path) -> None:
    deployments = Deployments(tmp_path / "runtimes")

    def tarball(name: str, *members: tuple[str, str, str]) -> Path:  # (name, kind, text or target)
        path = tmp_path / name
        with tarfile.open(path, "w") as image:
            for member, kind, value in members:
                info = tarfile.TarInfo(member)
                if kind == "link":
                    info.type, info.linkname = tarfile.SYMTYPE, value
                    image.addfile(info)
                else:
                    info.size = len(value)
                    image.addfile(info, io.BytesIO(value.encode()))
        return path

    basics = (("bin/sh", "file", "x"), ("usr/bin/python3", "file", "x"))
    cases = [
        (tarball("out.tar", *basics, ("../escape", "file", "x")), "not a root filesystem tarball"),
        (tarball("through.tar", *basics, ("etc", "link", "/etc"), ("etc/passwd", "file", "x")), "tarball"),
        (tarball("mount.tar", *basics, ("opt", "link", str(tmp_path))), "/opt is a link or a file"),
        (tarball("empty.tar", ("app/main.py", "file", "x")), "has no /bin/sh"),
        (
            tarball("hostpython.tar", ("bin/sh", "file", "x"), ("usr/bin/python3", "link", "/nowhere")),
            "no /usr/bin/python3",
        ),
    ]
    for path, said in cases:
        with pytest.raises(DeployError, match=said):
            await deployments.deploy_image("bad", path, Settings(entry="python3 /app/main.py"))
    assert deployments.versions("bad") == [] and not (tmp_path / "switchboard").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith("opt")]  # (nothing made through a link)
    with pytest.raises(DeployError, match="needs its command"):
        await deployments.deploy_image("bad", cases[0][0], Settings(entry=""))


def test_the_cli_deploys_an_image(tmp_path: Path) -> None:
    image = _image(tmp_path / "image.tar")
    command = [sys.executable, "-m", "gateway.cli", "runtime", "deploy", str(image), "--name", "imaged"]
    command += ["--data-dir", str(tmp_path / "data")]
    root = Path(__file__).resolve().parents[2]
    refused = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "needs its command" in refused.stderr
    made = subprocess.run(
        [*command, "--entry", "python3 /app/main.py"], cwd=root, capture_output=True, text=True
    )
    assert made.returncode == 0 and "deployed imaged:1" in made.stdout, made.stderr


def test_an_images_links_reach_nothing_of_the_hosts(tmp_path: Path) -> None:
    """Found in review (notes/review-20c): a hard link to a host file then written through, and a
    link swapped under a folder whose attributes are set last, both changed host files; unpacked
    in a sandbox of its own, they reach nothing of the host's."""
    need(available() is None, f"bubblewrap sandboxes: {available()}")
    victim, folder = tmp_path / "victim.txt", tmp_path / "victim-folder"
    victim.write_text("original\n")
    victim.chmod(0o600)
    folder.mkdir(mode=0o700)

    def add(image: tarfile.TarFile, name: str, kind: bytes, data: bytes = b"", link: str = "") -> None:
        info = tarfile.TarInfo(name)
        info.type, info.linkname, info.mode, info.uid = kind, link, 0o777, 4242
        info.size = len(data) if kind == tarfile.REGTYPE else 0
        image.addfile(info, io.BytesIO(data) if info.size else None)

    tarball = tmp_path / "evil.tar"
    with tarfile.open(tarball, "w") as image:
        add(image, "bin/sh", tarfile.REGTYPE, b"x")
        add(image, "usr/bin/python3", tarfile.REGTYPE, b"x")
        add(image, "x", tarfile.LNKTYPE, link=str(victim))
        add(image, "x", tarfile.REGTYPE, b"PWNED\n")
        add(image, "real", tarfile.DIRTYPE)
        add(image, "l", tarfile.SYMTYPE, link="real")
        add(image, "l", tarfile.DIRTYPE)
        add(image, "l", tarfile.SYMTYPE, link=str(folder))
    with contextlib.suppress(ImageError):
        untar(tarball, tmp_path / "rootfs")
    assert victim.read_text() == "original\n" and stat.S_IMODE(victim.stat().st_mode) == 0o600
    assert victim.stat().st_nlink == 1 and victim.stat().st_uid == os.getuid()
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and folder.stat().st_uid == os.getuid()

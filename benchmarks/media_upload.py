"""Memory under concurrent media uploads: N clients each send one file of `--mib` MiB at once
through nginx (`POST /api/v1/media`), while the memory of the containers on the path
(nginx, gateway, chat, mongodb) is sampled from cgroup accounting every 50 ms.

A container's memory is `memory.usage_in_bytes` (cgroup v1) or `memory.current` (v2):
what the kernel charges it, page cache included. The table prints, per container, its
memory before the uploads (median of 1 s of samples), its peak during them, and the peak's
growth next to the bytes in flight (N x size): a path that held whole files would grow by
about that much in each Python worker; a streaming one by a few chunks per upload.

    .venv/bin/python benchmarks/media_upload.py                 # 20 uploads of 16 MiB
    .venv/bin/python benchmarks/media_upload.py --uploads 5 --mib 4

It needs a deployed stack (local inventory) and the Docker host's /sys/fs/cgroup; it
stops by itself, and the files it uploads are never sent, so sweep_media removes them
after 24 hours.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import os
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from login_flood import register  # noqa: E402 - the benchmarks' own helper, beside this file

CGROUP = "/sys/fs/cgroup"
PATH_CONTAINERS = ("whatsapp-nginx", "whatsapp-gateway", "whatsapp-chat", "whatsapp-mongodb")
# A JPEG's first bytes (the type is checked by them); the rest is random, like a photo's.
JPEG_HEAD = bytes.fromhex("ffd8ffe000104a46494600010100000100010000")


def memory_path(container_id: str) -> str:
    candidates = [
        f"{CGROUP}/memory/docker/{container_id}/memory.usage_in_bytes",
        f"{CGROUP}/memory/system.slice/docker-{container_id}.scope/memory.usage_in_bytes",
        f"{CGROUP}/system.slice/docker-{container_id}.scope/memory.current",
        f"{CGROUP}/docker/{container_id}/memory.current",
    ]
    for path in candidates:
        if os.path.exists(path):
            return path
    found = glob.glob(f"{CGROUP}/**/*{container_id}*/memory.current", recursive=True)
    if found:
        return found[0]
    raise SystemExit(f"no cgroup memory accounting for container {container_id[:12]} under {CGROUP}")


def container_id(name: str) -> str:
    return subprocess.check_output(["docker", "inspect", "--format", "{{.Id}}", name], text=True).strip()


class Sampler(threading.Thread):
    def __init__(self, paths: dict[str, str], interval: float = 0.05):
        super().__init__(daemon=True)
        self.paths, self.interval = paths, interval
        self.samples: dict[str, list[tuple[float, int]]] = {name: [] for name in paths}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            now = time.monotonic()
            for name, path in self.paths.items():
                with open(path, encoding="ascii") as handle:
                    self.samples[name].append((now, int(handle.read())))
            time.sleep(self.interval)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--api", default="http://127.0.0.1:80/api/v1", help="the API through nginx")
    parser.add_argument("--uploads", type=int, default=20, choices=range(1, 101), metavar="1..100")
    parser.add_argument("--mib", type=int, default=16, choices=range(1, 17), metavar="1..16")
    args = parser.parse_args()

    _, _, token = register(args.api, "media benchmark")
    size = args.mib * 1024 * 1024 - 1024  # under the cap with room for nothing else
    payloads = [JPEG_HEAD + os.urandom(size - len(JPEG_HEAD)) for _ in range(args.uploads)]
    sampler = Sampler({name: memory_path(container_id(name)) for name in PATH_CONTAINERS})
    sampler.start()
    time.sleep(1.0)
    started = time.monotonic()

    def upload(data: bytes) -> tuple[int, bool, float]:
        t = time.monotonic()
        answer = requests.post(
            f"{args.api}/media",
            data=data,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "image/jpeg"},
            timeout=300,
        )
        ok = answer.status_code == 201 and answer.json()["sha256"] == hashlib.sha256(data).hexdigest()
        return answer.status_code, ok, time.monotonic() - t

    with ThreadPoolExecutor(args.uploads) as pool:
        results = list(pool.map(upload, payloads))
    finished = time.monotonic()
    time.sleep(0.5)
    sampler.stopped.set()
    sampler.join()

    in_flight = args.uploads * size
    print(
        f"{args.uploads} concurrent uploads of {size / 2**20:.1f} MiB ({in_flight / 2**20:.0f} MiB in flight)"
    )
    print(
        f"stored intact: {sum(ok for _, ok, _ in results)}/{args.uploads}; statuses: "
        f"{sorted({status for status, _, _ in results})}; wall {finished - started:.1f} s; "
        f"per upload p50 {statistics.median(d for _, _, d in results):.1f} s\n"
    )
    print("| container | before MiB | peak MiB | growth MiB | growth / bytes in flight |")
    print("|---|---:|---:|---:|---:|")
    for name, samples in sampler.samples.items():
        before = statistics.median(v for t, v in samples if t < started)
        peak = max(v for t, v in samples if started <= t <= finished + 0.5)
        growth = peak - before
        print(
            f"| {name} | {before / 2**20:.0f} | {peak / 2**20:.0f} | {growth / 2**20:.0f} | "
            f"{growth / in_flight:.1%} |"
        )


if __name__ == "__main__":
    main()

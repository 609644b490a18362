#!/usr/bin/env python3
"""What checking the token of a WebSocket upgrade costs, against the deployed stack:
  1. verifying one access token in process (PyJWT, EdDSA), as chat does before upgrading;
  2. a whole upgrade to chat (TCP + handshake + token check + catch-up query) and close.
(A third row once measured the gateway's GET /api/v1/auth/verify, for an nginx
`auth_request` hop: it about doubled an upgrade's cost, nginx never used it, and the route
is gone; benchmarks/README.md keeps the figures.) Prints a table; nothing is asserted.

  .venv/bin/python benchmarks/ws_auth.py --count 300
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from websockets.sync.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ws_delivery import load_vars, make_users, percentile, stack_of  # noqa: E402

from services.common.auth import AccessTokenVerifier  # noqa: E402


def timed(count: int, action) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--inventory", default="airgapped")
    parser.add_argument("--count", type=int, default=300)
    args = parser.parse_args()
    values = load_vars(args.inventory)
    stack = stack_of(values)
    ((_, token),) = make_users(stack, 1)
    public_key = values["whatsapp_jwt_public_key"]
    verifier = AccessTokenVerifier(
        public_key[public_key.index("-----BEGIN") :],
        issuer=values["whatsapp_jwt_issuer"],
        audience=values["whatsapp_jwt_audience"],
    )

    def upgrade() -> None:
        with connect(stack.ws, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=10):
            pass

    rows = [
        ("token check in process (chat)", timed(args.count, lambda: verifier.verify(token))),
        ("upgrade to chat + close", timed(args.count, upgrade)),
    ]
    print(f"\n{'what':40} {'count':>6} {'p50 ms':>8} {'p99 ms':>8} {'per s (1 client)':>17}")
    for what, samples in rows:
        mean = sum(samples) / len(samples)
        print(
            f"{what:40} {len(samples):6} {percentile(samples, 0.5):8.3f} {percentile(samples, 0.99):8.3f} "
            f"{1000 / mean:17.0f}"
        )


if __name__ == "__main__":
    main()

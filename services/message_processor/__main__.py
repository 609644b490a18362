"""`python -m services.message_processor --port 8085`: the consumers and the probes, one process."""

from __future__ import annotations

import argparse
import sys

from services.common.process import serve
from services.message_processor import create_app
from services.message_processor.consumer import start_consumers
from services.message_processor.context import processor_context


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.message_processor")
    parser.add_argument("--port", type=int, required=True, help="where /health, /ready and /metrics answer")
    args = parser.parse_args(argv)
    app = create_app(background=False)
    ctx = processor_context(app)
    return serve(app, args.port, lambda stopping: start_consumers(ctx, stopping))


if __name__ == "__main__":
    sys.exit(main())

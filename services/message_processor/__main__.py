"""`python -m services.message_processor --port 8085`: the consumers and the probes, one process."""

from __future__ import annotations

import sys

from services.common.process import worker_main
from services.message_processor import create_app
from services.message_processor.consumer import start_consumers
from services.message_processor.context import processor_context


def main(argv: list[str] | None = None) -> int:
    return worker_main("message_processor", create_app, processor_context, start_consumers, argv)


if __name__ == "__main__":
    sys.exit(main())

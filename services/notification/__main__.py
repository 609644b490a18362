"""`python -m services.notification --port 8084`: the consumers and the probes, one process."""

from __future__ import annotations

import sys

from services.common.process import worker_main
from services.notification import create_app
from services.notification.consumer import start_consumers
from services.notification.context import notification_context


def main(argv: list[str] | None = None) -> int:
    return worker_main("notification", create_app, notification_context, start_consumers, argv)


if __name__ == "__main__":
    sys.exit(main())

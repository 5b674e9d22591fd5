"""The naive baseline: one RQ job per comment, no batching, on the default forking worker.

Each job runs the same scoring code as the service (``score_comments``) on a batch of one.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rq import Worker  # noqa: E402

from service import jobs  # noqa: E402
from service.logs import configure_logging  # noqa: E402
from service.runtime import Runtime, bind_process_runtime, process_runtime  # noqa: E402
from service.settings import Settings  # noqa: E402

NAIVE_QUEUE = "naive"


def score_one(comment_id: str) -> int:
    return jobs.score_comments(process_runtime(), [comment_id])


def main() -> int:
    settings = Settings.from_env()
    configure_logging(settings)
    runtime = Runtime.build(settings)
    bind_process_runtime(runtime)
    runtime.models.refresh()  # loaded before forking, as in the real worker
    Worker([NAIVE_QUEUE], connection=runtime.redis).work(logging_level="WARNING")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The work the service offloads: run by a worker, ``jobqueue worker tasks:word_count``."""

from __future__ import annotations

import asyncio
import collections
from typing import Any

from jobqueue import Job


async def word_count(job: Job[dict[str, Any]]) -> dict[str, Any]:
    """Count the words of ``payload["text"]``; report progress as it goes."""
    text = str(job.payload["text"])
    if not text.strip():
        raise ValueError("nothing to count: the text is empty")
    words = text.lower().split()
    await job.report_progress({"words": len(words)})
    await asyncio.sleep(float(job.payload.get("slow", 0)))  # stands for real work
    common = collections.Counter(words).most_common(3)
    return {"words": len(words), "most_common": [[word, count] for word, count in common]}

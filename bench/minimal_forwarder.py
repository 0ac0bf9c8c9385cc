"""The actions benchmark's baseline: the least a follow-up worker must do -- read what was
written to a Redis stream and POST it to the receiver -- with nothing recorded.

    python -m bench.minimal_forwarder <redis url> <stream> <receiver url>
"""

from __future__ import annotations

import sys

import httpx
import redis


def main() -> None:
    url, stream, target = sys.argv[1:4]
    client = redis.Redis.from_url(url)
    http = httpx.Client(timeout=5)
    last = "0-0"
    while True:
        reply = client.xread({stream: last}, count=100, block=1000)
        for _, entries in reply or []:
            for entry_id, fields in entries:
                last = entry_id
                key = fields[b"key"].decode()
                http.post(target, json={"id": key}, headers={"Idempotency-Key": key})


if __name__ == "__main__":
    main()

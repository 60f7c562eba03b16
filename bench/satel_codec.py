"""Throughput of the Satel frame decoder on a realistic byte stream.

Builds a stream like a busy ETHM-1 link carries (0x7F new-data answers, zone and partition
bitmaps, 0xEF results, event records, with FE bytes that need stuffing), cuts it into chunks of
varied size as TCP reads would, decodes it and prints::

    BENCH satel_codec=<frames per second> frames/s target=200000 better=higher

followed by the human-readable line with the ratio to target (both from ``_rig.emit``, like every
benchmark here). ``--quick`` uses a smaller stream for the test suite.
"""

from __future__ import annotations

import argparse
import random
import sys
import time

from _rig import emit
from firmware_bridges.satel.protocol import (
    EventAnswer,
    Frame,
    FrameDecoder,
    NewDataAnswer,
    PartitionsAnswer,
    PartitionState,
    ResultAnswer,
    ZonesAnswer,
    ZoneState,
    decode_event_record,
    encode_answer,
)

TARGET = 200_000
# Mostly full TCP segments, with the occasional tiny read a slow link produces.
CHUNK_SIZES = (1, 3, 17, 64, 256, 512, 1460, 1460, 4096, 4096)


def _sample_frames(rng: random.Random) -> list[bytes]:
    """A pool of distinct answer frames in roughly the mix a polling link sees."""
    pool: list[bytes] = []
    for _ in range(64):
        pool.append(encode_answer(NewDataAnswer(frozenset(rng.sample(range(40), rng.randint(0, 4))))))
        zones = frozenset(rng.sample(range(1, 129), rng.randint(0, 6)))
        # Zone 2..8 set together gives an FE byte, which is sent stuffed.
        if rng.random() < 0.3:
            zones |= {2, 3, 4, 5, 6, 7, 8}
        pool.append(encode_answer(ZonesAnswer(ZoneState(rng.choice([0, 1, 2, 4])), zones)))
        pool.append(encode_answer(ResultAnswer(rng.choice([0x00, 0x01, 0x11, 0xFF]))))
        pool.append(encode_answer(PartitionsAnswer(PartitionState.ARMED, frozenset(rng.sample(range(1, 33), 2)))))
    for _ in range(16):
        record = decode_event_record(bytes(rng.randrange(256) for _ in range(8)))
        pool.append(encode_answer(EventAnswer(record, rng.randrange(1 << 24), rng.randrange(1 << 24))))
    return pool


def build_stream(frames: int, seed: int = 7094) -> tuple[list[bytes], int]:
    """Return the stream cut into chunks, and how many frames it holds."""
    rng = random.Random(seed)
    pool = _sample_frames(rng)
    stream = b"".join(rng.choice(pool) for _ in range(frames))
    chunks = []
    pos = 0
    while pos < len(stream):
        size = rng.choice(CHUNK_SIZES)
        chunks.append(stream[pos : pos + size])
        pos += size
    return chunks, frames


def decode_all(chunks: list[bytes]) -> tuple[int, float]:
    """Decode every chunk with a fresh decoder; return frames decoded and seconds taken."""
    decoder = FrameDecoder()
    feed = decoder.feed
    decoded = 0
    started = time.perf_counter()
    for chunk in chunks:
        decoded += len(feed(chunk))
    return decoded, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the BENCH line; exit 1 if the decoder lost or broke frames."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller stream, fewer repetitions")
    args = parser.parse_args(argv)
    frames = 30_000 if args.quick else 300_000
    repeats = 3 if args.quick else 5
    chunks, expected = build_stream(frames)

    check = FrameDecoder()
    events = [event for chunk in chunks for event in check.feed(chunk)]
    if len(events) != expected or not all(isinstance(event, Frame) for event in events):
        print(f"satel_codec: decoded {len(events)} events, expected {expected} frames", file=sys.stderr)
        return 1

    best = min(decode_all(chunks)[1] for _ in range(repeats))
    emit("satel_codec", expected / best, "frames/s", TARGET, "higher", decimals=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())

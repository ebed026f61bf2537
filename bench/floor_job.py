"""The floor without a table format: Kafka -> fastavro -> zstd Parquet files, one process per core.

    python -m bench.floor_job --bootstrap HOST:PORT --topic T --out DIR [--processes 2]

Each process takes its share of the topic's partitions, reads them to their end offsets, decodes
with fastavro, flattens to one row per record, and writes zstd Parquet files of up to 500,000 rows.
No table, no index, no commit protocol, no quarantine: the bound on what any table writer can reach
on this machine.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
from importlib import resources
from pathlib import Path
from typing import Any

ROWS_PER_FILE = 500_000


def _run(bootstrap: str, topic: str, partitions: list[int], out: str, worker: int) -> int:
    import fastavro
    import pyarrow as pa
    import pyarrow.parquet as pq
    from confluent_kafka import Consumer, TopicPartition

    schema = fastavro.parse_schema(
        __import__("json").loads(resources.files("loglake").joinpath("schemas/log_batch.avsc").read_text())
    )
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"floor-{worker}", "enable.auto.commit": False})
    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in partitions}
    consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
    columns: dict[str, list[Any]] = {}
    written = files = 0
    done: set[int] = {p for p, end in ends.items() if end == 0}

    def flush() -> None:
        nonlocal files, columns
        if columns:
            arrays = {
                k: pa.array(v, type=pa.map_(pa.string(), pa.string())) if k == "attributes" else pa.array(v)
                for k, v in columns.items()
            }
            pq.write_table(pa.table(arrays), f"{out}/part-{worker}-{files}.parquet", compression="zstd")
            files += 1
            columns = {}

    while len(done) < len(partitions):
        for message in consumer.consume(10_000, timeout=5):
            if message.error():
                continue
            batch = fastavro.schemaless_reader(io.BytesIO(message.value()), schema, schema)
            for index, record in enumerate(batch["records"]):
                row = {
                    "record_key": f"{batch['service']}:{batch['batch_id']}:{index}",
                    **record,
                    "attributes": list(record["attributes"].items()),
                    "batch_id": batch["batch_id"],
                    "service": batch["service"],
                    "host": batch["host"],
                    "region": batch["region"],
                    "sent_at": batch["sent_at"],
                    "record_index": index,
                    "event_date": record["ts"].strftime("%Y-%m-%d"),
                }
                for key, value in row.items():
                    columns.setdefault(key, []).append(value)
                written += 1
            if len(columns.get("record_key", ())) >= ROWS_PER_FILE:
                flush()
            if message.offset() + 1 >= ends[message.partition()]:
                done.add(message.partition())
    flush()
    consumer.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()
    from confluent_kafka.admin import AdminClient

    meta = AdminClient({"bootstrap.servers": args.bootstrap}).list_topics(args.topic, timeout=30)
    partitions = sorted(meta.topics[args.topic].partitions)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    shares = [partitions[i :: args.processes] for i in range(args.processes)]
    with multiprocessing.Pool(args.processes) as pool:
        counts = pool.starmap(_run, [(args.bootstrap, args.topic, s, args.out, i) for i, s in enumerate(shares) if s])
    print(sum(counts))


if __name__ == "__main__":
    main()

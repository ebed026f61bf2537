"""Synthetic load: realistic ``LogBatch`` messages sent to Kafka (``loglake produce``).

Each message is one batch of log records from one service instance, encoded with the public
contract in ``loglake/schemas/log_batch.avsc`` (binary Avro, optionally behind the Confluent
5-byte header) or as its JSON twin. Records carry users with emails and IPv4 addresses (the PII a
right-to-be-forgotten request targets), anonymous and system records with nulls, realistic level
mix, events, messages and attributes.

Everything random comes from one :class:`random.Random`, so a seed reproduces the same batches,
batch ids included. The pools (users, deployments, message variants) are built once from a fixed
seed, which keeps the per-record work to a few lookups: the benchmark sends a million messages.
"""

from __future__ import annotations

import io
import json
import logging
import os
import random
import struct
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

import fastavro
from confluent_kafka import KafkaError, KafkaException, Producer

from loglake.errors import BrokerError, ConfigError
from loglake.shape import avro_schema

log = logging.getLogger(__name__)

Encoding = Literal["avro", "json"]

WIRE_MAGIC = 0
DEFAULT_SCHEMA_ID = 1
_WIRE_HEADER = struct.Struct(">bI")

# How far before "now" a batch may have been sent, how long a batch collects records before it is
# sent, and how late a delayed batch (a client that was offline) may arrive.
SENT_SPREAD_MS = 10 * 60 * 1000
BATCH_WINDOW_MS = 5_000
LATE_BATCH_SHARE = 0.01
LATE_BATCH_MAX_MS = 2 * 60 * 60 * 1000
REGIONLESS_SHARE = 0.05

PRODUCER_CONFIG: dict[str, Any] = {
    "linger.ms": 25,
    "batch.size": 1_000_000,
    # lz4 is cheap on both ends and the Spark Kafka source reads it natively.
    "compression.type": "lz4",
    # Bounded so a large run does not hold gigabytes in the client while the broker catches up.
    "queue.buffering.max.messages": 500_000,
    "queue.buffering.max.kbytes": 262_144,
    # No idempotence: a fresh broker answers the producer-id request with "coordinator load in
    # progress" for a while, which stalls and warns, and a duplicate from a retry is harmless: the
    # ingest upserts by record key (service:batch_id:index).
    "enable.idempotence": False,
    # The partitioner of the Java client, so a batch id lands on the same partition whichever
    # client sent it.
    "partitioner": "murmur2_random",
    "message.timeout.ms": 120_000,
    # Only failures call back into Python: one callback per message costs more than the encoding.
    "delivery.report.only.error": True,
}
FLUSH_TIMEOUT_S = 180.0


@dataclass(frozen=True)
class ProduceResult:
    """What :func:`produce` sent: every message was acknowledged by the broker."""

    topic: str
    messages: int
    records: int
    bytes: int
    seconds: float
    encoding: str
    # The registry's id of the writer schema, when a schema registry was given.
    schema_id: int | None = None


# ---------------------------------------------------------------- pools


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_FIRST_NAMES = _words(
    "ada alan alice amir ana anna ben carla chen chloe david diego elena emma eva fatima felix "
    "grace hana hugo ines isabel ivan jack james jana john jonas julia kai karim laura lea leo "
    "lina lucas luis maria marie mateo max mia mohamed nina noah nora olga omar paul priya rafael "
    "rosa sam sara sofia tom uma victor wei yara yusuf zoe"
)
_LAST_NAMES = _words(
    "adams ahmed alvarez bauer becker brown chen costa dubois fischer garcia gonzalez hansen "
    "hoffmann ivanova jansen johnson kim kowalski kumar lee lopez martin meyer moreau muller "
    "nakamura nguyen novak olsen patel perez petrov rossi santos schmidt silva smith suzuki "
    "tanaka taylor wagner wang weber williams wilson yilmaz zhang"
)
# Reserved example domains: realistic shape, nobody's real address.
_EMAIL_DOMAINS = ("example.com", "example.org", "example.net", "mail.example", "corp.example")
# First octets of common public ranges, so addresses look like real client traffic.
_PUBLIC_FIRST_OCTETS = (23, 31, 37, 45, 62, 77, 81, 85, 89, 91, 94, 103, 109, 151, 176, 185, 188, 193, 203, 212, 217)

_SERVICES = ("api-gateway", "auth", "checkout", "payments", "catalog", "search", "cart", "notifications")
_REGIONS = ("eu-west-1", "eu-central-1", "us-east-1", "us-west-2", "ap-southeast-1")
_HOSTS_PER_SERVICE_REGION = 3

N_USERS = 20_000
# Shares of records without a user: anonymous visitors (an IP but no account) and system records.
_ANONYMOUS_SHARE = 0.08
_SYSTEM_SHARE = 0.03
# Users who never gave an email.
_NO_EMAIL_SHARE = 0.05

# Values the message templates draw from, keyed by placeholder name.
_FIELDS: dict[str, tuple[str, ...]] = {
    "method": ("GET", "GET", "GET", "POST", "POST", "PUT", "DELETE"),
    "path": (
        "/api/v1/orders",
        "/api/v1/orders/{id}",
        "/api/v1/cart",
        "/api/v1/products",
        "/api/v1/products/{id}",
        "/api/v1/search",
        "/api/v1/users/me",
        "/api/v1/payments",
        "/api/v1/session",
        "/healthz",
    ),
    "status": ("200", "200", "200", "200", "201", "204", "301", "304"),
    "client_status": ("400", "401", "403", "404", "404", "409", "422", "429"),
    "server_status": ("500", "502", "503", "504"),
    "ms": tuple(str(v) for v in (3, 5, 8, 12, 17, 23, 31, 45, 62, 88, 120, 180, 250, 400, 750, 1200, 2500)),
    "sku": tuple(f"SKU-{n:05d}" for n in range(10_000, 10_400, 7)),
    "qty": ("1", "1", "1", "2", "2", "3", "5"),
    "amount": ("4.99", "9.99", "12.50", "19.90", "24.00", "49.95", "79.00", "129.00", "349.99"),
    "currency": ("EUR", "EUR", "USD", "USD", "GBP", "SEK"),
    "provider": ("stripe", "adyen", "paypal", "klarna"),
    "decline": ("insufficient_funds", "card_expired", "do_not_honor", "fraud_suspected"),
    "query_words": ("running shoes", "usb c cable", "coffee beans", "rain jacket", "desk lamp", "yoga mat"),
    "hits": ("0", "3", "12", "48", "120", "512"),
    "channel": ("email", "sms", "push"),
    "template": ("order_confirmation", "shipping_update", "password_reset", "weekly_digest"),
    "method_2fa": ("totp", "sms", "webauthn"),
    "count": ("1", "2", "3", "5", "8", "13"),
    "pool": ("db-primary", "db-replica", "redis", "search-cluster"),
    "version": ("2.31.0", "2.31.1", "2.32.0"),
    "id": tuple(str(n) for n in range(100_000, 100_500, 3)),
}


@dataclass(frozen=True)
class _EventTemplate:
    level: str
    event: str
    weight: int
    message: str
    # attribute key -> placeholder whose value it takes
    attributes: tuple[tuple[str, str], ...] = ()


_T = _EventTemplate
_COMMON_EVENTS = (
    _T(
        "INFO",
        "http.request",
        60,
        "{method} {path} {status} in {ms} ms",
        (("http.method", "method"), ("http.status", "status"), ("duration_ms", "ms")),
    ),
    _T(
        "WARN",
        "http.request",
        6,
        "{method} {path} {client_status} in {ms} ms",
        (("http.method", "method"), ("http.status", "client_status")),
    ),
    _T(
        "ERROR",
        "http.request",
        2,
        "{method} {path} {server_status} upstream failed after {ms} ms",
        (("http.method", "method"), ("http.status", "server_status")),
    ),
    _T("DEBUG", "cache.lookup", 10, "cache miss for {path}, loaded in {ms} ms", (("duration_ms", "ms"),)),
    _T("WARN", "pool.exhausted", 2, "connection pool {pool} exhausted, waited {ms} ms", (("pool", "pool"),)),
    _T("ERROR", "dependency.timeout", 1, "call to {pool} timed out after {ms} ms", (("dependency", "pool"),)),
    _T("DEBUG", "config.reload", 1, "configuration reloaded, version {version}", (("version", "version"),)),
)
_SERVICE_EVENTS: dict[str, tuple[_EventTemplate, ...]] = {
    "api-gateway": (
        _T("WARN", "rate_limit.hit", 4, "rate limit reached, {count} requests rejected", (("rejected", "count"),)),
    ),
    "auth": (
        _T("INFO", "user.login", 20, "login succeeded with {method_2fa}", (("mfa", "method_2fa"),)),
        _T("WARN", "user.login_failed", 5, "login failed: bad password, attempt {count}", (("attempt", "count"),)),
        _T("INFO", "user.logout", 8, "session ended"),
        _T("INFO", "password.reset_requested", 2, "password reset requested"),
    ),
    "checkout": (
        _T(
            "INFO",
            "order.created",
            15,
            "order created with {qty} x {sku}, total {amount} {currency}",
            (("sku", "sku"), ("currency", "currency")),
        ),
        _T("WARN", "order.stock_low", 3, "stock low for {sku}", (("sku", "sku"),)),
        _T(
            "ERROR",
            "order.failed",
            1,
            "order failed: payment step returned {server_status}",
            (("http.status", "server_status"),),
        ),
    ),
    "payments": (
        _T(
            "INFO",
            "payment.authorized",
            15,
            "payment of {amount} {currency} authorized by {provider}",
            (("provider", "provider"), ("currency", "currency")),
        ),
        _T(
            "WARN",
            "payment.declined",
            4,
            "payment of {amount} {currency} declined by {provider}: {decline}",
            (("provider", "provider"), ("decline_code", "decline")),
        ),
        _T(
            "ERROR",
            "payment.provider_error",
            1,
            "{provider} returned {server_status} after {ms} ms",
            (("provider", "provider"),),
        ),
    ),
    "catalog": (
        _T("INFO", "product.viewed", 20, "product {sku} viewed", (("sku", "sku"),)),
        _T("DEBUG", "price.recomputed", 5, "price of {sku} recomputed: {amount} {currency}", (("sku", "sku"),)),
    ),
    "search": (
        _T(
            "INFO",
            "search.query",
            25,
            "query '{query_words}' returned {hits} hits in {ms} ms",
            (("hits", "hits"), ("duration_ms", "ms")),
        ),
        _T("WARN", "search.slow_query", 3, "slow query '{query_words}' took {ms} ms", (("duration_ms", "ms"),)),
    ),
    "cart": (
        _T("INFO", "cart.item_added", 20, "added {qty} x {sku} to cart", (("sku", "sku"),)),
        _T("INFO", "cart.item_removed", 6, "removed {sku} from cart", (("sku", "sku"),)),
    ),
    "notifications": (
        _T(
            "INFO",
            "notification.sent",
            20,
            "{template} sent by {channel}",
            (("channel", "channel"), ("template", "template")),
        ),
        _T("WARN", "notification.bounced", 3, "{template} by {channel} bounced", (("channel", "channel"),)),
    ),
}
_VARIANTS_PER_TEMPLATE = 24
# Each service's variants are spread over a table of this many slots in proportion to the
# template weights, so one random index picks a weighted variant.
_VARIANT_SLOTS = 2048

_POOL_SEED = 20_251_124

# A user as it appears in a record: (user_id, email, client_ip); any of them may be None.
_Identity = tuple[str | None, str | None, str | None]
# A message variant: (level, event, message, attributes).
_Variant = tuple[str, str, str, dict[str, str]]


@dataclass(frozen=True)
class _Pools:
    identities: tuple[_Identity, ...]
    deployments: tuple[tuple[str, str, str], ...]  # (service, host, region)
    variants: dict[str, tuple[_Variant, ...]]  # service -> _VARIANT_SLOTS weighted variants


def _ipv4(rng: random.Random) -> str:
    if rng.random() < 0.15:  # traffic from inside the corporate network
        return f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    return f"{rng.choice(_PUBLIC_FIRST_OCTETS)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"


def _users(rng: random.Random) -> list[_Identity]:
    taken: set[str] = set()
    users: list[_Identity] = []
    for n in range(1, N_USERS + 1):
        first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
        local = rng.choice((f"{first}.{last}", f"{first}{last}", f"{first[0]}{last}", f"{first}_{last}"))
        domain = rng.choice(_EMAIL_DOMAINS)
        email = f"{local}@{domain}"
        suffix = 1
        while email in taken:  # namesakes get a number, as mail providers do
            suffix += 1
            email = f"{local}{suffix}@{domain}"
        taken.add(email)
        users.append((f"u-{n:06d}", None if rng.random() < _NO_EMAIL_SHARE else email, _ipv4(rng)))
    return users


def _variants(rng: random.Random, templates: tuple[_EventTemplate, ...]) -> tuple[_Variant, ...]:
    weighted: list[tuple[int, list[_Variant]]] = []
    for t in templates:
        variants: list[_Variant] = []
        for _ in range(_VARIANTS_PER_TEMPLATE):
            values = {name: rng.choice(choices) for name, choices in _FIELDS.items()}
            values["path"] = values["path"].replace("{id}", values["id"])
            attributes = {key: values[field] for key, field in t.attributes}
            variants.append((t.level, t.event, t.message.format(**values), attributes))
        weighted.append((t.weight, variants))
    total = sum(weight for weight, _ in weighted)
    slots: list[_Variant] = []
    for weight, variants in weighted:
        count = max(1, round(_VARIANT_SLOTS * weight / total))
        slots.extend(variants[i % len(variants)] for i in range(count))
    return tuple(slots)


@cache
def _pools() -> _Pools:
    # A fixed seed: the pools are part of the generator, not of a run, so the run seed alone
    # decides which users and messages a batch gets.
    rng = random.Random(_POOL_SEED)  # noqa: S311 - synthetic data, not security
    users = _users(rng)
    n_anonymous = round(N_USERS * _ANONYMOUS_SHARE / (1 - _ANONYMOUS_SHARE - _SYSTEM_SHARE))
    n_system = round(N_USERS * _SYSTEM_SHARE / (1 - _ANONYMOUS_SHARE - _SYSTEM_SHARE))
    identities: list[_Identity] = list(users)
    identities += [(None, None, _ipv4(rng)) for _ in range(n_anonymous)]
    identities += [(None, None, None)] * n_system
    deployments = []
    for service in _SERVICES:
        for region in _REGIONS:
            for _ in range(_HOSTS_PER_SERVICE_REGION):
                pod = f"{rng.getrandbits(32):08x}"[:5] + "-" + f"{rng.getrandbits(32):08x}"[:5]
                deployments.append((service, f"{service}-{pod}.{region}", region))
    variants = {s: _variants(rng, _COMMON_EVENTS + _SERVICE_EVENTS[s]) for s in _SERVICES}
    return _Pools(identities=tuple(identities), deployments=tuple(deployments), variants=variants)


# ---------------------------------------------------------------- batches


def make_batch(rng: random.Random, now_ms: int, n_records: int) -> dict[str, Any]:
    """Build one ``LogBatch`` as a dict that fastavro writes as is.

    ``sent_at`` falls in the ten minutes before ``now_ms``; records are in time order within the
    five seconds before ``sent_at`` (about one batch in a hundred arrives up to two hours late).
    Timestamps are epoch milliseconds (ints). Every record is a fresh dict, so callers may mutate it.

    Args:
        rng: The only source of randomness; the same state gives the same batch.
        now_ms: The run's "now" in epoch milliseconds.
        n_records: Number of records (0 gives an empty batch).
    """
    pools = _pools()
    random_, randbytes = rng.random, rng.randbytes
    service, host, region = pools.deployments[int(random_() * len(pools.deployments))]
    batch_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    sent_at = now_ms - int(random_() * SENT_SPREAD_MS)
    newest = sent_at - int(random_() * 200)
    if random_() < LATE_BATCH_SHARE:
        newest -= int(random_() * LATE_BATCH_MAX_MS)
    identities = pools.identities
    n_identities = len(identities)
    variants = pools.variants[service]
    n_variants = len(variants)
    offsets = sorted(int(random_() * BATCH_WINDOW_MS) for _ in range(n_records))
    records = []
    for offset in offsets:
        user_id, email, client_ip = identities[int(random_() * n_identities)]
        level, event, message, attributes = variants[int(random_() * n_variants)]
        records.append(
            {
                "ts": newest - BATCH_WINDOW_MS + offset,
                "level": level,
                "user_id": user_id,
                "email": email,
                "client_ip": client_ip,
                "event": event,
                "message": message,
                "attributes": {**attributes, "trace_id": randbytes(8).hex()},
            }
        )
    return {
        "batch_id": batch_id,
        "service": service,
        "host": host,
        "region": None if random_() < REGIONLESS_SHARE else region,
        "sent_at": sent_at,
        "records": records,
    }


def generate_batches(
    rng: random.Random, now_ms: int, messages: int, records_per_message: tuple[int, int] = (7, 25)
) -> Iterator[dict[str, Any]]:
    """The batches :func:`produce` sends for this RNG state: ``messages`` of them, lazily.

    Each batch has between ``records_per_message[0]`` and ``records_per_message[1]`` records
    (inclusive, uniform).
    """
    low, high = records_per_message
    for _ in range(messages):
        yield make_batch(rng, now_ms, rng.randint(low, high))


# ---------------------------------------------------------------- encodings


@cache
def _parsed_schema() -> Any:
    return fastavro.parse_schema(avro_schema())


def _strip_logical_types(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: _strip_logical_types(v) for k, v in node.items() if k != "logicalType"}
    if isinstance(node, list):
        return [_strip_logical_types(v) for v in node]
    return node


@cache
def _parsed_schema_plain() -> Any:
    # The same binary layout with timestamps as plain longs: decoding gives back the epoch
    # milliseconds that make_batch wrote instead of datetimes.
    return fastavro.parse_schema(_strip_logical_types(avro_schema()))


def schema_versions() -> dict[str, dict[str, Any]]:
    """LogBatch as a producer team evolves it, each version BACKWARD compatible with the one before:
    v2 adds ``trace_id`` to LogRecord; v3 adds ``env`` to LogBatch and drops the optional ``region``."""
    v1 = avro_schema()
    v2 = json.loads(json.dumps(v1))
    records = next(f for f in v2["fields"] if f["name"] == "records")
    records["type"]["items"]["fields"].append({"name": "trace_id", "type": ["null", "string"], "default": None})
    v3 = json.loads(json.dumps(v2))
    v3["fields"] = [f for f in v3["fields"] if f["name"] != "region"]
    v3["fields"].append({"name": "env", "type": ["null", "string"], "default": None})
    return {"v1": v1, "v2": v2, "v3": v3}


def encode_avro(
    batch: dict[str, Any],
    confluent_wire_format: bool = False,
    schema_id: int = DEFAULT_SCHEMA_ID,
    schema: Any = None,
) -> bytes:
    """Encode ``batch`` as binary Avro with the committed schema (or ``schema``, parsed by fastavro).

    Args:
        batch: A ``LogBatch`` dict, timestamps as epoch milliseconds or datetimes.
        confluent_wire_format: Prefix the Confluent header: magic byte 0 and the 4-byte
            big-endian ``schema_id``.
        schema_id: The schema registry id written in the header.
        schema: Another writer schema (fastavro's parsed form); fields it lacks are left out and
            fields it adds take their defaults.
    """
    buf = io.BytesIO()
    if confluent_wire_format:
        buf.write(_WIRE_HEADER.pack(WIRE_MAGIC, schema_id))
    fastavro.schemaless_writer(buf, schema if schema is not None else _parsed_schema(), batch)
    return buf.getvalue()


def decode_avro(data: bytes, confluent_wire_format: bool = False) -> dict[str, Any]:
    """Decode a binary-Avro ``LogBatch`` (timestamps come back as epoch milliseconds).

    Raises:
        ValueError: ``confluent_wire_format`` is set and ``data`` does not start with the header.
    """
    buf = io.BytesIO(data)
    if confluent_wire_format:
        if len(data) < _WIRE_HEADER.size or data[0] != WIRE_MAGIC:
            raise ValueError(f"no Confluent wire-format header: first bytes are {data[:5]!r}")
        buf.seek(_WIRE_HEADER.size)
    decoded = fastavro.schemaless_reader(buf, _parsed_schema_plain(), None)
    if not isinstance(decoded, dict):  # the schema is a record; this only narrows the type
        raise ValueError(f"decoded a {type(decoded).__name__}, not a LogBatch record")
    return decoded


def encode_json(batch: dict[str, Any]) -> bytes:
    """Encode ``batch`` as a JSON ``LogBatch``: timestamps as epoch milliseconds, attributes as an object."""
    return json.dumps(batch, separators=(",", ":"), ensure_ascii=False).encode()


# ---------------------------------------------------------------- producing


def produce(
    bootstrap_servers: str,
    topic: str,
    messages: int,
    seed: int | None = None,
    records_per_message: tuple[int, int] = (7, 25),
    encoding: Encoding = "avro",
    confluent_wire_format: bool = False,
    *,
    now_ms: int | None = None,
    schema_registry: str | None = None,
    writer_schema: dict[str, Any] | None = None,
) -> ProduceResult:
    """Send ``messages`` synthetic ``LogBatch`` messages to ``topic`` and wait for every ack.

    The message key is the batch id. The topic is created by the broker on first use when it
    does not exist (``auto.create.topics.enable``); create it first for a set partition count.

    Args:
        bootstrap_servers: Kafka bootstrap address, ``host:port[,host:port]``.
        topic: Topic to send to.
        messages: Number of messages (batches).
        seed: Seed of the generator; the same seed and ``now_ms`` give the same batches.
        records_per_message: Inclusive range of records per batch.
        encoding: ``avro`` (the contract) or ``json``.
        confluent_wire_format: Prefix Avro with the 5-byte Confluent header (Avro only).
        now_ms: The run's "now" in epoch milliseconds (default: the current time).
        schema_registry: A Confluent-compatible registry URL: the writer schema is registered under
            the subject ``<topic>-value`` (compatibility BACKWARD) and its id goes in every header.
        writer_schema: The Avro schema to write with (default LogBatch); with a registry, a new
            version of the subject.

    Returns:
        Counts, payload bytes and wall-clock seconds including the final flush.

    Raises:
        ConfigError: An argument is out of range.
        BrokerError: The broker does not answer, or a message was not delivered.
    """
    low, high = records_per_message
    if messages < 0:
        raise ConfigError(f"messages {messages} must be 0 or more")
    if not 0 <= low <= high:
        raise ConfigError(f"records_per_message {records_per_message} must be (MIN, MAX) with 0 <= MIN <= MAX")
    if encoding not in ("avro", "json"):
        raise ConfigError(f"encoding {encoding!r} must be 'avro' or 'json'")
    if (confluent_wire_format or schema_registry) and encoding != "avro":
        raise ConfigError("confluent_wire_format and schema_registry apply to Avro only; use encoding 'avro'")
    schema_id = DEFAULT_SCHEMA_ID
    if schema_registry:
        from devservers.registry_server import register

        text = json.dumps(writer_schema if writer_schema is not None else avro_schema())
        schema_id = register(schema_registry, f"{topic}-value", text)
        confluent_wire_format = True
    parsed = fastavro.parse_schema(writer_schema) if writer_schema is not None else None
    if seed is None:
        seed = int.from_bytes(os.urandom(8), "big")
    rng = random.Random(seed)  # noqa: S311 - synthetic data, not security
    now = now_ms if now_ms is not None else int(time.time() * 1000)

    failures: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            failures.append(err)

    producer = Producer(
        {
            **PRODUCER_CONFIG,
            "bootstrap.servers": bootstrap_servers,
            "on_delivery": on_delivery,
            "logger": logging.getLogger("app.produce.librdkafka"),
        }
    )
    started = time.perf_counter()
    try:
        producer.list_topics(timeout=15)
    except KafkaException as exc:
        raise BrokerError(f"no Kafka broker answers at {bootstrap_servers}: {exc.args[0]}") from exc

    records = 0
    total_bytes = 0
    for n, batch in enumerate(generate_batches(rng, now, messages, (low, high))):
        payload = (
            encode_avro(batch, confluent_wire_format, schema_id, parsed) if encoding == "avro" else encode_json(batch)
        )
        records += len(batch["records"])
        total_bytes += len(payload)
        key = batch["batch_id"].encode()
        while True:
            try:
                producer.produce(topic, payload, key)
                break
            except BufferError:
                # The local queue is full: let librdkafka send and serve callbacks, then retry.
                producer.poll(0.05)
        if n % 1000 == 0:
            producer.poll(0)
        if failures:
            break
    remaining = producer.flush(FLUSH_TIMEOUT_S)
    seconds = time.perf_counter() - started
    if failures:
        raise BrokerError(
            f"{len(failures)} message(s) to topic {topic!r} at {bootstrap_servers} failed (sending stopped at the "
            f"first report); first error: {failures[0]}"
        )
    if remaining:
        raise BrokerError(
            f"{remaining} message(s) to topic {topic!r} at {bootstrap_servers} were not acknowledged "
            f"within {FLUSH_TIMEOUT_S:.0f} s"
        )
    log.debug("produced %d messages (%d records) to %s in %.2f s", messages, records, topic, seconds)
    return ProduceResult(
        topic=topic,
        messages=messages,
        records=records,
        bytes=total_bytes,
        seconds=round(seconds, 3),
        encoding=encoding,
        schema_id=schema_id if schema_registry else None,
    )

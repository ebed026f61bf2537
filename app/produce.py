"""Synthetic load: realistic ``LogBatch`` messages, or batches of any log shape, sent to Kafka (``loglake produce``).

Each message is one batch of log records from one service instance, encoded with the public
contract in ``loglake/schemas/log_batch.avsc`` (binary Avro, optionally behind the Confluent
5-byte header) or as its JSON twin. Records carry users with emails and IPv4 addresses (the PII a
right-to-be-forgotten request targets), anonymous and system records with nulls, realistic level
mix, events, messages and attributes.

A log shape of one's own (:class:`loglake.shape.LogShape`) gets batches built from its Avro schema
(:func:`make_shaped_batch`): every field by its type, new key values per batch, recent event times in
the shape's unit, and subject columns naming people of a fixed pool, so an erasure finds them again.

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
import re
import struct
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any, Literal

import fastavro
from confluent_kafka import KafkaError, KafkaException, Producer

from loglake.errors import BrokerError, ConfigError
from loglake.shape import LogShape, avro_schema, default_shape

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
    rng: random.Random,
    now_ms: int,
    messages: int,
    records_per_message: tuple[int, int] = (7, 25),
    shape: LogShape | None = None,
) -> Iterator[dict[str, Any]]:
    """The batches :func:`produce` sends for this RNG state: ``messages`` of them, lazily.

    Each batch has between ``records_per_message[0]`` and ``records_per_message[1]`` records
    (inclusive, uniform). LogBatch messages (``shape`` None or of LogBatch's schema) come from
    :func:`make_batch`, any other shape's from :func:`make_shaped_batch`.
    """
    low, high = records_per_message
    if is_log_batch(shape):
        for _ in range(messages):
            yield make_batch(rng, now_ms, rng.randint(low, high))
        return
    assert shape is not None  # is_log_batch(None) is True; this only narrows the type
    # Int keys count up from where the seed says, so two runs rarely share one; from below 2**30 an
    # int key does not overflow within a billion messages.
    first = rng.randrange(2**30)
    for n in range(messages):
        yield make_shaped_batch(rng, now_ms, rng.randint(low, high), shape, first + n)


# ---------------------------------------------------------------- batches of any shape

# Share of nullable fields left null (a subject column's null is an anonymous record).
NULL_SHARE = 0.1
# People a subject column names: few enough that each recurs across batches, as an erasure expects.
N_SUBJECTS = 5_000
_MAX_ITEMS = 3  # items of an array or entries of a map
# A recursive type (a record holding itself through a nullable field) stops nesting here.
_MAX_DEPTH = 6
_TIMESTAMP_UNITS = {
    "timestamp-millis": "millis",
    "local-timestamp-millis": "millis",
    "timestamp-micros": "micros",
    "local-timestamp-micros": "micros",
}
_DAY_US = 86_400_000_000
_MAP_KEYS = _words("trace_id span_id tenant feature env build route locale plan client version retry")
# Ofcom's ranges reserved for drama (a mobile one, then geographic ones): real-looking E.164
# numbers that reach nobody.
_FICTION_PHONE_PREFIXES = _words(
    "+447700900 +442079460 +441134960 +441144960 +441154960 +441164960 +441174960 +441184960 "
    "+441214960 +441314960 +441414960 +441514960 +441614960 +442920180"
)
_ID_WORDS = frozenset(("id", "ids", "uid", "ref", "key", "identifier", "number", "no"))
_IP_WORDS = frozenset(("ip", "ipv4", "ipaddr", "ipaddress"))


class _Draw:
    """What a value depends on besides its type: the run's RNG, and the batch, moment, person and
    message variant at hand (set per batch and per record, read by the field generators)."""

    __slots__ = ("person", "random", "records", "rng", "sequence", "t_us", "variant")

    def __init__(self, rng: random.Random, sequence: int) -> None:
        self.rng = rng
        self.random = rng.random
        self.sequence = sequence
        self.t_us = 0  # microseconds, so a micros column has sub-millisecond digits and stays in order
        self.person = 0
        self.variant: _Variant = ("INFO", "", "", {})
        self.records: list[dict[str, Any]] = []


# A field's generator: (draw, nesting depth) -> a value fastavro writes for the field's type.
_Gen = Callable[[_Draw, int], Any]


@dataclass(frozen=True)
class _Plan:
    """A shape compiled once into one generator per field, so a record costs a few calls."""

    batch: tuple[tuple[str, _Gen], ...]  # every batch field, the records array included
    record: tuple[tuple[str, _Gen], ...]
    variants: tuple[_Variant, ...]


def _tokens(name: str) -> list[str]:
    """``clientIP`` and ``client_ip`` alike: ``["client", "ip"]``."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [t for t in re.split(r"[^a-z0-9]+", spaced.lower()) if t]


def _subject_kind(column: str) -> str:
    tokens = _tokens(column)
    if any("mail" in t for t in tokens):
        return "email"
    if any("phone" in t or t in ("msisdn", "tel") for t in tokens):
        return "phone"
    if any(t in _IP_WORDS for t in tokens):
        return "ip"
    return "id"


@cache
def _subject_pool(column: str) -> tuple[str, ...]:
    """The identifiers ``column`` holds, person ``n`` at index ``n``: the same for every run."""
    # A fixed seed per column: the pool is part of the generator, so the run seed decides only who
    # appears where.
    rng = random.Random(f"{_POOL_SEED}:{column}")  # noqa: S311 - synthetic data, not security
    kind = _subject_kind(column)
    if kind == "email":
        taken: set[str] = set()
        emails = []
        for _ in range(N_SUBJECTS):
            first, last = rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES)
            local = rng.choice((f"{first}.{last}", f"{first}{last}", f"{first[0]}{last}"))
            domain = rng.choice(_EMAIL_DOMAINS)
            email, suffix = f"{local}@{domain}", 1
            while email in taken:
                suffix += 1
                email = f"{local}{suffix}@{domain}"
            taken.add(email)
            emails.append(email)
        return tuple(emails)
    if kind == "phone":
        numbers = rng.sample(range(len(_FICTION_PHONE_PREFIXES) * 1000), N_SUBJECTS)
        return tuple(f"{_FICTION_PHONE_PREFIXES[n // 1000]}{n % 1000:03d}" for n in numbers)
    if kind == "ip":
        return tuple(_ipv4(rng) for _ in range(N_SUBJECTS))
    stem = "-".join(t for t in _tokens(column) if t not in _ID_WORDS) or "user"
    return tuple(f"{stem}-{n:05d}" for n in range(1, N_SUBJECTS + 1))


@cache
def _shaped_variants() -> tuple[_Variant, ...]:
    templates = _COMMON_EVENTS + tuple(t for events in _SERVICE_EVENTS.values() for t in events)
    return _variants(random.Random(_POOL_SEED), templates)  # noqa: S311 - synthetic data, not security


def _choice(values: tuple[Any, ...]) -> _Gen:
    n = len(values)

    def value(d: _Draw, _depth: int) -> Any:
        return values[int(d.random() * n)]

    return value


def _subject(pool: tuple[str, ...]) -> _Gen:
    def value(d: _Draw, _depth: int) -> str:
        return pool[d.person]

    return value


def _or_null(gen: _Gen) -> _Gen:
    def value(d: _Draw, depth: int) -> Any:
        return None if depth > _MAX_DEPTH or d.random() < NULL_SHARE else gen(d, depth)

    return value


def _one_of(gens: tuple[_Gen, ...]) -> _Gen:
    n = len(gens)

    def value(d: _Draw, depth: int) -> Any:
        return gens[int(d.random() * n)](d, depth)

    return value


def _time(unit: str) -> _Gen:
    """Epoch time of the moment at hand in ``unit``."""
    if unit == "seconds":
        return lambda d, _depth: d.t_us // 1_000_000
    if unit == "micros":
        return lambda d, _depth: d.t_us
    if unit == "nanos":
        return lambda d, _depth: d.t_us * 1000
    return lambda d, _depth: d.t_us // 1000


def _uuid(d: _Draw, _depth: int) -> str:
    return str(uuid.UUID(int=d.rng.getrandbits(128), version=4))


def _sequence(d: _Draw, _depth: int) -> int:
    return d.sequence


def _batch_records(d: _Draw, _depth: int) -> list[dict[str, Any]]:
    return d.records


def _string(field: str) -> _Gen:
    """A string by what the field's name ends in (``log_level``, not ``level_id``); else one of a
    hundred ``<field>-<n>`` values."""
    words = _tokens(field)
    last = words[-1] if words else ""
    if last in ("level", "severity"):
        return lambda d, _depth: d.variant[0]
    if last in ("event", "action"):
        return lambda d, _depth: d.variant[1]
    if last in ("message", "msg", "text", "body", "description"):
        return lambda d, _depth: d.variant[2]
    if last in ("service", "app", "application"):
        return _choice(_SERVICES)
    if last in ("region", "zone"):
        return _choice(_REGIONS)
    if last == "version":
        return _choice(_FIELDS["version"])
    stem = "-".join(words) or "value"
    if last in ("host", "hostname", "pod", "instance", "node"):
        rng = random.Random(f"{_POOL_SEED}:{field}")  # noqa: S311 - synthetic data, not security
        return _choice(tuple(f"{stem}-{rng.getrandbits(20):05x}-{rng.getrandbits(20):05x}" for _ in range(24)))
    return _choice(tuple(f"{stem}-{n}" for n in range(100)))


def _number(d: _Draw, _depth: int) -> float:
    # Sixteenths below 4096 are exact in float32 too: a float field decodes to what was written.
    return int(d.random() * 65_536) / 16


_PRIMITIVE_GENS: dict[str, _Gen] = {
    "null": lambda _d, _depth: None,
    "boolean": lambda d, _depth: d.random() < 0.5,
    "int": lambda d, _depth: int(d.random() * 10_000),
    "long": lambda d, _depth: int(d.random() * 1_000_000_000),
    "float": _number,
    "double": _number,
    "bytes": lambda d, _depth: d.rng.randbytes(1 + int(d.random() * 16)),
}


def _logical(node: dict[str, Any], base: str) -> _Gen | None:
    """The generator of a logical type, or None to write ``base`` as it is."""
    logical = node.get("logicalType")
    if logical in _TIMESTAMP_UNITS and base == "long":
        return _time(_TIMESTAMP_UNITS[logical])
    if logical in ("timestamp-nanos", "local-timestamp-nanos") and base == "long":
        return _time("nanos")
    if logical == "date" and base == "int":
        return lambda d, _depth: d.t_us // _DAY_US
    if logical == "time-millis" and base == "int":
        return lambda d, _depth: d.t_us % _DAY_US // 1000
    if logical == "time-micros" and base == "long":
        return lambda d, _depth: d.t_us % _DAY_US
    if logical == "uuid" and base == "string":
        return _uuid
    if logical == "decimal" and base in ("bytes", "fixed"):
        # Within the precision, so the unscaled value also fits a fixed of the size Avro requires.
        digits, scale = min(int(node.get("precision", 9)), 9), int(node.get("scale", 0))
        return lambda d, _depth: Decimal(int(d.random() * 10**digits)).scaleb(-scale)
    return None


def _fixed(node: dict[str, Any]) -> _Gen:
    size = int(node["size"])

    def value(d: _Draw, _depth: int) -> bytes:
        return d.rng.randbytes(size)

    return _logical(node, "fixed") or value


def _full_name(node: dict[str, Any], namespace: str) -> tuple[str, str]:
    """A named type's full name and the namespace its own fields resolve names in."""
    name = str(node["name"])
    if "." in name:
        return name, name.rpartition(".")[0]
    space = node.get("namespace", namespace) or ""
    return (f"{space}.{name}" if space else name), space


class _Compiler:
    """Avro types -> field generators, with the named types defined so far (Avro defines before use)."""

    def __init__(self, source: str) -> None:
        self.named: dict[str, _Gen] = {}
        self.source = source

    def type(self, node: Any, namespace: str, field: str) -> _Gen:
        if isinstance(node, list):
            return self.union(node, namespace, field)
        if isinstance(node, str):
            if node == "string":
                return _string(field)
            if node in _PRIMITIVE_GENS:
                return _PRIMITIVE_GENS[node]
            full = node if "." in node else (f"{namespace}.{node}" if namespace else node)
            gen = self.named.get(full) or self.named.get(node)
            if gen is None:
                raise ConfigError(f"{self.source}: field {field!r} names type {node!r}, which is not defined before it")
            return gen
        kind = node["type"]
        if kind in ("record", "error"):
            return self.record(node, namespace)
        if kind in ("enum", "fixed"):
            gen = _choice(tuple(node["symbols"])) if kind == "enum" else _fixed(node)
            self.named[_full_name(node, namespace)[0]] = gen
            return gen
        if kind == "array":
            return self.array(self.type(node["items"], namespace, field))
        if kind == "map":
            return self.map(self.type(node["values"], namespace, field))
        if isinstance(kind, str) and (kind == "string" or kind in _PRIMITIVE_GENS):
            return _logical(node, kind) or self.type(kind, namespace, field)
        return self.type(kind, namespace, field)  # {"type": {...}} wraps a type

    def union(self, branches: list[Any], namespace: str, field: str) -> _Gen:
        gens = tuple(self.type(b, namespace, field) for b in branches if b != "null")
        nullable = len(gens) < len(branches)
        if not gens:
            return _PRIMITIVE_GENS["null"]
        gen = gens[0] if len(gens) == 1 else _one_of(gens)
        return _or_null(gen) if nullable else gen

    def record(self, node: dict[str, Any], namespace: str) -> _Gen:
        full, space = _full_name(node, namespace)
        fields: list[tuple[str, _Gen]] = []

        def value(d: _Draw, depth: int) -> dict[str, Any]:
            return {name: gen(d, depth + 1) for name, gen in fields}

        # Defined before its fields are compiled: a field may name the record itself.
        self.named[full] = value
        fields.extend((f["name"], self.type(f["type"], space, f["name"])) for f in node.get("fields", []))
        return value

    @staticmethod
    def array(items: _Gen) -> _Gen:
        def value(d: _Draw, depth: int) -> list[Any]:
            n = 0 if depth > _MAX_DEPTH else int(d.random() * (_MAX_ITEMS + 1))
            return [items(d, depth + 1) for _ in range(n)]

        return value

    @staticmethod
    def map(values: _Gen) -> _Gen:
        def value(d: _Draw, depth: int) -> dict[str, Any]:
            n = 0 if depth > _MAX_DEPTH else int(d.random() * (_MAX_ITEMS + 1))
            return {_MAP_KEYS[int(d.random() * len(_MAP_KEYS))]: values(d, depth + 1) for _ in range(n)}

        return value


def _array_items(field_type: Any) -> dict[str, Any]:
    """The record type of the records array (``{"type": "array", ...}``, possibly in a union with null)."""
    for branch in field_type if isinstance(field_type, list) else [field_type]:
        if isinstance(branch, dict) and branch.get("type") == "array":
            items: dict[str, Any] = branch["items"]
            return items
    raise ConfigError(f"records field is not an array: {field_type!r}")


@cache
def _plan(shape: LogShape) -> _Plan:
    root: dict[str, Any] = json.loads(shape.schema)
    compiler = _Compiler(shape.source)
    # A first pass defines every named type, including those the special fields below replace.
    compiler.type(root, "", "")
    _, namespace = _full_name(root, "")
    units = dict(shape.time_columns)
    subjects = set(shape.subject_columns)

    def top_level(
        node: dict[str, Any], space: str, specials: dict[str, _Gen], columns: tuple[str, ...]
    ) -> tuple[tuple[str, _Gen], ...]:
        out = []
        for f in node["fields"]:
            name, avro_type = f["name"], f["type"]
            nullable = isinstance(avro_type, list) and "null" in avro_type
            gen = specials.get(name)
            if gen is None and name in columns and name in units:
                gen = _time(units[name])
            elif gen is None and name in columns and name in subjects:
                gen = _subject(_subject_pool(name))
            if gen is None:
                out.append((name, compiler.type(avro_type, space, name)))
            else:
                # Never a null key, event time or records array, even where the schema allows one: the
                # load is of good records.
                out.append((name, _or_null(gen) if nullable and name not in specials else gen))
        return tuple(out)

    records_type = next(f["type"] for f in root["fields"] if f["name"] == shape.records_field)
    items = _array_items(records_type)
    _, item_space = _full_name(items, namespace)
    keys: dict[str, _Gen] = {shape.records_field: _batch_records}
    for f in root["fields"]:
        if f["name"] in shape.key_fields:
            kind = f["type"]["type"] if isinstance(f["type"], dict) else f["type"]
            keys[f["name"]] = _uuid if kind == "string" else _sequence
    record = top_level(items, item_space, {shape.event_time_field: _time(shape.event_time_unit)}, shape.record_columns)
    return _Plan(
        batch=top_level(root, namespace, keys, shape.batch_columns), record=record, variants=_shaped_variants()
    )


def is_log_batch(shape: LogShape | None) -> bool:
    """Whether ``shape``'s messages are LogBatch ones (None is LogBatch): they get :func:`make_batch`'s data."""
    return shape is None or shape.schema == default_shape().schema


def make_shaped_batch(
    rng: random.Random, now_ms: int, n_records: int, shape: LogShape, sequence: int
) -> dict[str, Any]:
    """Build one batch of ``shape`` as a dict that fastavro writes with ``shape.schema`` as is.

    Every field gets a value of its Avro type; a nullable one is null about one time in ten. The key
    fields are new per batch: a UUID for a string, ``sequence`` for an int or long. The records'
    event times (in ``shape.event_time_unit``) are in time order within five seconds before the
    batch was sent, which is within the ten minutes before ``now_ms``; other time columns take
    their record's (or the batch's) moment in their own unit. A record's subject columns name one
    person of a fixed pool of :data:`N_SUBJECTS` (emails, IPv4 addresses, phone numbers or ids by
    the column's name), so the same people recur across batches and runs.

    Args:
        rng: The only source of randomness; the same state gives the same batch.
        now_ms: The run's "now" in epoch milliseconds.
        n_records: Number of records (0 gives an empty batch).
        shape: The messages' shape, e.g. from :func:`loglake.shape.load`.
        sequence: The batch's number, unique within the run: the value of int and long key fields.

    Raises:
        ConfigError: The schema names a type it does not define.
    """
    plan = _plan(shape)
    random_ = rng.random
    draw = _Draw(rng, sequence)
    sent_us = (now_ms - int(random_() * SENT_SPREAD_MS)) * 1000
    start_us = sent_us - BATCH_WINDOW_MS * 1000
    variants = plan.variants
    n_variants = len(variants)
    fields = plan.record
    records = []
    for offset in sorted(int(random_() * BATCH_WINDOW_MS * 1000) for _ in range(n_records)):
        draw.t_us = start_us + offset
        draw.person = int(random_() * N_SUBJECTS)
        draw.variant = variants[int(random_() * n_variants)]
        records.append({name: gen(draw, 1) for name, gen in fields})
    draw.t_us = sent_us
    draw.person = int(random_() * N_SUBJECTS)
    draw.variant = variants[int(random_() * n_variants)]
    draw.records = records
    return {name: gen(draw, 1) for name, gen in plan.batch}


def registry_schema(shape: LogShape | None = None) -> dict[str, Any]:
    """The schema :func:`produce` registers for ``shape``: LogBatch's as committed, else ``shape.schema``
    with its time columns and its event time as Avro timestamps again.

    ``shape.schema`` reads them as plain longs (:func:`loglake.shape.with_plain_times`). Registered
    like that, a reader that resolves its shape from the registry's latest version would see the
    time columns as numbers and take the event time's unit from its own settings.
    """
    if shape is None or is_log_batch(shape):
        return avro_schema()
    schema: dict[str, Any] = json.loads(shape.schema)
    units = dict(shape.time_columns)

    def stamp(fields: list[dict[str, Any]], names: dict[str, str]) -> None:
        for f in fields:
            unit = names.get(f["name"])
            if unit in ("millis", "micros") and f["type"] in ("long", ["null", "long"]):
                timestamp = {"type": "long", "logicalType": f"timestamp-{unit}"}
                f["type"] = timestamp if f["type"] == "long" else ["null", timestamp]

    stamp(schema["fields"], {n: units[n] for n in shape.batch_columns if n in units})
    records = next(f for f in schema["fields"] if f["name"] == shape.records_field)
    record_units = {n: units[n] for n in shape.record_columns if n in units}
    stamp(_array_items(records["type"])["fields"], {shape.event_time_field: shape.event_time_unit, **record_units})
    return schema


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
    shape: LogShape | None = None,
) -> ProduceResult:
    """Send ``messages`` synthetic log batches to ``topic`` and wait for every ack.

    The batches are realistic ``LogBatch`` ones, or with ``shape`` batches of that shape
    (:func:`make_shaped_batch`) written with ``shape.schema``. The message key is the batch id (of
    a shape, its last key field). The topic is created by the broker on first use when it does not
    exist (``auto.create.topics.enable``); create it first for a set partition count.

    Args:
        bootstrap_servers: Kafka bootstrap address, ``host:port[,host:port]``.
        topic: Topic to send to.
        messages: Number of messages (batches).
        seed: Seed of the generator; the same seed and ``now_ms`` give the same batches.
        records_per_message: Inclusive range of records per batch.
        encoding: ``avro`` (the contract) or ``json`` (LogBatch only: the ingest reads JSON as LogBatch).
        confluent_wire_format: Prefix Avro with the 5-byte Confluent header (Avro only).
        now_ms: The run's "now" in epoch milliseconds (default: the current time).
        schema_registry: A Confluent-compatible registry URL: the writer schema is registered under
            the subject ``<topic>-value`` (compatibility BACKWARD) and its id goes in every header
            (for a shape, :func:`registry_schema`).
        writer_schema: The Avro schema to write with (default LogBatch's or the shape's); with a
            registry, a new version of the subject.
        shape: The messages' shape, as :func:`loglake.shape.load` gives it for the ingest's
            settings; None or LogBatch's: LogBatch messages, the same for a seed as without it.

    Returns:
        Counts, payload bytes and wall-clock seconds including the final flush.

    Raises:
        ConfigError: An argument is out of range, or JSON is asked for a shape of one's own.
        BrokerError: The broker does not answer, or a message was not delivered.
    """
    low, high = records_per_message
    if messages < 0:
        raise ConfigError(f"messages {messages} must be 0 or more")
    if not 0 <= low <= high:
        raise ConfigError(f"records_per_message {records_per_message} must be (MIN, MAX) with 0 <= MIN <= MAX")
    if encoding not in ("avro", "json"):
        raise ConfigError(f"encoding {encoding!r} must be 'avro' or 'json'")
    # The ingest's own rule (loglake.shape.load), so nothing is sent that it would refuse to read.
    if encoding == "json" and shape is not None and shape != default_shape():
        raise ConfigError(
            "setting ingest.encoding (loglake produce --encoding): JSON messages follow the LogBatch contract; a "
            "log_schema of your own needs avro"
        )
    if (confluent_wire_format or schema_registry) and encoding != "avro":
        raise ConfigError("confluent_wire_format and schema_registry apply to Avro only; use encoding 'avro'")
    schema_id = DEFAULT_SCHEMA_ID
    if schema_registry:
        from devservers.registry_server import register

        text = json.dumps(writer_schema if writer_schema is not None else registry_schema(shape))
        schema_id = register(schema_registry, f"{topic}-value", text)
        confluent_wire_format = True
    parsed = fastavro.parse_schema(writer_schema) if writer_schema is not None else None
    records_field, key_field = "records", "batch_id"
    if shape is not None and not is_log_batch(shape):
        records_field, key_field = shape.records_field, shape.batch_label
        if parsed is None:
            parsed = fastavro.parse_schema(json.loads(shape.schema))
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
    for n, batch in enumerate(generate_batches(rng, now, messages, (low, high), shape)):
        payload = (
            encode_avro(batch, confluent_wire_format, schema_id, parsed) if encoding == "avro" else encode_json(batch)
        )
        records += len(batch[records_field])
        total_bytes += len(payload)
        key = str(batch[key_field]).encode()
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

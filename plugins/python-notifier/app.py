"""Example plugin with outbound HTTP, in Python: the same notifier as the Rust
`notifier` (plugins/notifier). For each order event it POSTs a JSON
notification to `config.webhook`, with `Idempotency-Key: <stream>/<entry id>`
and any `config.headers` lines (`Name: value`), and makes sure a redelivery
does not send it again:

- before sending, `state.get("<stream>:notified:<entry id>")`: if the key
  exists the notification went out on an earlier delivery: skipped, acked;
- after a 2xx, `state.seen` records that key at once, for `seen_ttl_ms`;
- 5xx, 429, a timeout or any failure to get an answer: retry after
  `retry_ms` x 2^(delivery - 1), at most `retry_max_ms`;
- another status (4xx, or a 3xx: this one follows no redirect): reject with
  the status and the start of the body.

A malformed order is rejected; one whose payment is pending is retried in
1 s. With `config.stats` (a granted hash key) counts `sent` and `skipped`.
Built by `make plugins` with componentize-py, against the world in wit/
(the plugin contract plus `wasi:http/outgoing-handler`).
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import config, effects, outgoing_handler, state
from wit_world.imports import wasi_http_types as http
from wit_world.imports.log import Level, log
from wit_world.imports.redis_streams_plugin_types import Entry, Error_Reject, Error_Retry, Retry
from wit_world.imports.streams import StreamError_Closed, StreamError_LastOperationFailed

ORDER_TYPES = ("order.placed", "order.paid", "order.shipped", "order.cancelled")
SEEN_TTL_MS = 7 * 24 * 3600 * 1000
EXCERPT = 200


class WitWorld(wit_world.WitWorld):
    def handle(self, entry: Entry) -> None:
        why = malformed(entry)
        if why:
            raise Err(Error_Reject(why))
        if any(f.name == "payment" and f.value == b"pending" for f in entry.fields):
            raise Err(Error_Retry(Retry(f"{entry.id}: payment still pending", 1000)))
        webhook = config.get("webhook")
        if webhook is None:
            raise retry(entry, "no webhook configured (config.webhook)")
        key = f"{entry.stream}:notified:{entry.id}"
        try:
            if state.get(key) is not None:
                log(Level.INFO, f"{entry.id} already notified: skipped (delivery {entry.delivery_count})")
                count(entry, "skipped")
                return
        except Err as e:
            raise retry(entry, str(e.value))
        try:
            status, excerpt = post(webhook, notification(entry), f"{entry.stream}/{entry.id}")
        except Failed as e:
            raise retry(entry, f"POST {webhook}: {e}")
        if 200 <= status < 300:
            try:
                if state.seen(key, number("seen_ttl_ms", SEEN_TTL_MS)):
                    log(Level.WARN, f"{entry.id} was also notified by another delivery")
            except Err as e:
                log(Level.WARN, f"{entry.id} sent but not recorded as sent: {e.value}")
            count(entry, "sent")
            return
        if status == 429 or 500 <= status < 600:
            raise retry(entry, f"webhook {webhook} answered {status}")
        raise Err(Error_Reject(f"webhook {webhook} answered {status}: {excerpt}"))


class Failed(Exception):
    """No answer from the webhook."""


def number(name: str, default: int) -> int:
    value = config.get(name)
    return int(value) if value is not None and value.isdigit() else default


def retry(entry: Entry, reason: str) -> Err:
    doublings = min(max(entry.delivery_count - 1, 0), 20)
    delay = min(number("retry_ms", 1000) * (1 << doublings), number("retry_max_ms", 30000))
    return Err(Error_Retry(Retry(reason, delay)))


def count(entry: Entry, what: str) -> None:
    stats = config.get("stats")
    if stats is None:
        return
    try:
        effects.incr(entry.id, stats, what, 1)
    except Err as e:
        log(Level.WARN, f"cannot count {what}: {e.value}")


def malformed(entry: Entry):
    fields = {f.name: f.value for f in entry.fields}
    for name in ("type", "order_id", "customer", "amount"):
        value = fields.get(name)
        if value is None:
            return f'missing field "{name}"'
        if not value:
            return f'field "{name}" is empty'
    kind, amount = fields["type"].decode("utf-8", "replace"), fields["amount"].decode("utf-8", "replace")
    if kind not in ORDER_TYPES:
        return f'unknown order type "{kind}"'
    units, _, fraction = amount.partition(".")
    if not units.isdigit() or ("." in amount and not fraction.isdigit()) or len(fraction) > 2:
        return f'malformed amount "{amount}"'
    return None


def notification(entry: Entry) -> bytes:
    fields = {}
    for f in entry.fields:
        try:
            fields[f.name] = f.value.decode("utf-8")
        except UnicodeDecodeError:
            pass
    note = {"id": entry.id, "stream": entry.stream, "delivery": entry.delivery_count, "fields": fields}
    return json.dumps(note, separators=(",", ":")).encode()


def post(url: str, body: bytes, idempotency_key: str):
    """POSTs `body`; returns the status and the start of the response body."""
    scheme, _, rest = url.partition("://")
    if scheme not in ("http", "https") or not rest:
        raise Failed(f"{url!r} is not an http or https URL")
    authority, slash, path = rest.partition("/")
    headers = [
        ("content-type", b"application/json"),
        ("content-length", str(len(body)).encode()),
        ("idempotency-key", idempotency_key.encode()),
    ]
    for line in (config.get("headers") or "").splitlines():
        if line.strip():
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip().encode()))
    request = http.OutgoingRequest(http.Fields.from_list(headers))
    request.set_method(http.Method_Post())
    request.set_scheme(http.Scheme_Https() if scheme == "https" else http.Scheme_Http())
    request.set_authority(authority)
    request.set_path_with_query(slash + path)
    outgoing = request.body()
    try:
        future = outgoing_handler.handle(request, None)
    except Err as e:
        raise Failed(describe(e.value))
    written = write(outgoing, body)
    response = answer(future)
    if isinstance(response, Failed):
        raise response
    if written is not None:
        raise written
    return response.status(), read(response)


def write(outgoing, body: bytes):
    """Writes the body and ends it; a failure is returned, not raised (the
    response may say why the request failed)."""
    try:
        with outgoing.write() as stream:
            for at in range(0, len(body), 4096):
                stream.blocking_write_and_flush(body[at:at + 4096])
        http.OutgoingBody.finish(outgoing, None)
    except Err as e:
        closed = isinstance(e.value, (StreamError_Closed, StreamError_LastOperationFailed))
        return Failed(stream_error(e.value) if closed else describe(e.value))
    return None


def answer(future):
    while True:
        got = future.get()
        if got is None:
            future.subscribe().block()
            continue
        if isinstance(got, Err):
            return Failed("response taken twice")
        inner = got.value
        if isinstance(inner, Err):
            return Failed(describe(inner.value))
        return inner.value


def read(response) -> str:
    kept = b""
    with response.consume() as body, body.stream() as stream:
        while True:
            try:
                chunk = stream.blocking_read(16 * 1024)
            except Err as e:
                if isinstance(e.value, StreamError_Closed):
                    break
                raise Failed(f"reading the response: {stream_error(e.value)}")
            kept = (kept + chunk)[:EXCERPT]
    return kept.decode("utf-8", "replace")


def stream_error(error) -> str:
    if isinstance(error, StreamError_Closed):
        return "connection closed"
    code = http.http_error_code(error.value)
    return describe(code) if code is not None else error.value.to_debug_string()


def describe(code) -> str:
    if isinstance(code, http.ErrorCode_HttpRequestDenied):
        return "denied by the host (origin not granted)"
    if isinstance(code, (http.ErrorCode_ConnectionTimeout, http.ErrorCode_ConnectionReadTimeout,
                         http.ErrorCode_HttpResponseTimeout)):
        return "timed out"
    if isinstance(code, http.ErrorCode_ConnectionRefused):
        return "connection refused"
    if isinstance(code, http.ErrorCode_HttpResponseBodySize):
        return f"response body too large ({code.value or 0} bytes, over the host's cap)"
    return type(code).__name__

"""Example plugin in Python: validates the order events of the redis.io
streaming guide (`type`, `order_id`, `customer`, `amount`) and logs one line
per order. A missing or malformed field is permanent: the entry is rejected.
An order whose `payment` field is `pending` is retried (in 1 s, at the earliest).

Same behaviour, verdicts and log lines as the Rust `orders` plugin.
Built by `make plugins` with componentize-py (see plugins/python-orders/README.md).
"""

import wit_world
from componentize_py_types import Err
from wit_world.imports.log import Level, log
from wit_world.imports.types import Entry, Error_Reject, Error_Retry, Retry

# The order event types the redis.io guide produces.
ORDER_TYPES = ("order.placed", "order.paid", "order.shipped", "order.cancelled")


class Invalid(Exception):
    """An entry that can never be handled."""


class WitWorld(wit_world.WitWorld):
    def handle(self, entry: Entry) -> None:
        try:
            kind, order_id, customer, cents = parse(entry)
        except Invalid as why:
            log(Level.WARN, f"rejecting {entry.id}: {why}")
            raise Err(Error_Reject(str(why)))
        if any(f.name == "payment" and f.value == b"pending" for f in entry.fields):
            reason = f"payment of {order_id} still pending"
            log(Level.WARN, f"retrying {entry.id}: {reason}")
            raise Err(Error_Retry(Retry(reason, 1000)))
        log(
            Level.INFO,
            f"order {order_id} {kind.removeprefix('order.')} for {customer}: "
            f"amount {cents // 100}.{cents % 100:02}",
        )


def parse(entry: Entry) -> tuple[str, str, str, int]:
    kind = text(entry, "type")
    if kind not in ORDER_TYPES:
        raise Invalid(f"unknown order type {quote(kind)}")
    order_id = text(entry, "order_id")
    customer = text(entry, "customer")
    amount = text(entry, "amount")
    cents = parse_cents(amount)
    if cents is None:
        raise Invalid(f"malformed amount {quote(amount)}")
    return kind, order_id, customer, cents


def text(entry: Entry, name: str) -> str:
    """The first field called `name`, as non-empty UTF-8 text."""
    field = next((f for f in entry.fields if f.name == name), None)
    if field is None:
        raise Invalid(f"missing field {quote(name)}")
    try:
        value = field.value.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid(f"field {quote(name)} is not UTF-8") from None
    if not value:
        raise Invalid(f"field {quote(name)} is empty")
    return value


def parse_cents(amount: str) -> int | None:
    """A non-negative decimal amount with at most two decimals ("12", "12.5",
    "12.50") in cents; None when malformed."""
    units, dot, fraction = amount.partition(".")

    def digits(s: str) -> bool:
        return s != "" and all("0" <= c <= "9" for c in s)

    if not digits(units) or (dot and not digits(fraction)) or len(fraction) > 2:
        return None
    cents = int(fraction.ljust(2, "0")) if fraction else 0
    total = int(units) * 100 + cents
    return total if total < 2**64 else None


def quote(s: str) -> str:
    """Quotes like Rust's `{:?}` does for plain text, so log lines match the Rust plugin."""
    out = ['"']
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{{{ord(c):x}}}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)

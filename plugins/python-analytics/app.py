"""Example plugin with effects, in Python: the redis.io guide's "analytics"
consumer. For each valid order event (`type`, `order_id`, `customer`,
`amount`): `HINCRBY <stream>:totals count:<type> 1` and `revenue:<type>
<cents>`, and for an `order.paid` an entry appended to `<stream>:paid`
(`order_id`, `customer`, `amount_cents`, `source`: the order's entry id),
capped at `MAXLEN ~ paid_maxlen` when that config value is granted.

The host applies these effects with the entry's ack, in one step, only when
the verdict is ok and this consumer still owns the entry: a crash, a retry
or a peer's reclaim never counts an order twice. Same behaviour as the Rust
`analytics` plugin. Built by `make plugins` with componentize-py.
"""

import wit_world
from componentize_py_types import Err
from wit_world.imports import config, effects
from wit_world.imports.log import Level, log
from wit_world.imports.types import Entry, Error_Reject, Error_Retry, Field, Retry

# The order event types the redis.io guide produces.
ORDER_TYPES = ("order.placed", "order.paid", "order.shipped", "order.cancelled")


class Invalid(Exception):
    """An entry that can never be handled."""


class WitWorld(wit_world.WitWorld):
    def handle(self, entry: Entry) -> None:
        try:
            kind, order_id, customer, cents = parse(entry)
        except Invalid as why:
            raise Err(Error_Reject(str(why)))
        if any(f.name == "payment" and f.value == b"pending" for f in entry.fields):
            raise Err(Error_Retry(Retry(f"payment of {order_id} still pending", 1000)))
        totals = f"{entry.stream}:totals"
        try:
            effects.incr(entry.id, totals, f"count:{kind}", 1)
            effects.incr(entry.id, totals, f"revenue:{kind}", cents)
            if kind == "order.paid":
                fields = [
                    Field("order_id", order_id.encode()),
                    Field("customer", customer.encode()),
                    Field("amount_cents", str(cents).encode()),
                    Field("source", entry.id.encode()),
                ]
                max_len = config.get("paid_maxlen")
                effects.emit(entry.id, f"{entry.stream}:paid", fields, int(max_len) if max_len else None)
        except Err as refused:
            # A key not granted is a deployment mistake, not the entry's: retry.
            raise Err(Error_Retry(Retry(str(refused.value), None)))
        if entry.delivery_count > 1:
            log(Level.INFO, f"order {order_id} counted on delivery {entry.delivery_count}")


def parse(entry: Entry) -> tuple[str, str, str, int]:
    kind = text(entry, "type")
    if kind not in ORDER_TYPES:
        raise Invalid(f'unknown order type "{kind}"')
    order_id = text(entry, "order_id")
    customer = text(entry, "customer")
    amount = text(entry, "amount")
    cents = parse_cents(amount)
    if cents is None:
        raise Invalid(f'malformed amount "{amount}"')
    return kind, order_id, customer, cents


def text(entry: Entry, name: str) -> str:
    """The first field called `name`, as non-empty UTF-8 text."""
    field = next((f for f in entry.fields if f.name == name), None)
    if field is None:
        raise Invalid(f'missing field "{name}"')
    try:
        value = field.value.decode("utf-8")
    except UnicodeDecodeError:
        raise Invalid(f'field "{name}" is not UTF-8') from None
    if not value:
        raise Invalid(f'field "{name}" is empty')
    return value


def parse_cents(amount: str) -> int | None:
    """A non-negative decimal amount with at most two decimals in cents, below
    2^53 (as the Rust plugin); None when malformed."""
    units, dot, fraction = amount.partition(".")

    def digits(s: str) -> bool:
        return s != "" and all("0" <= c <= "9" for c in s)

    if not digits(units) or (dot and not digits(fraction)) or len(fraction) > 2:
        return None
    total = int(units) * 100 + (int(fraction.ljust(2, "0")) if fraction else 0)
    return total if total < 2**53 else None

// Example plugin in C: validates the order events of the redis.io streaming
// guide (`type`, `order_id`, `customer`, `amount`) and logs one line per
// order. A missing or malformed field is permanent: the entry is rejected. An
// order whose `payment` field is `pending` is retried (in 1 s, at the earliest).
//
// Same behaviour, verdicts and log lines as the Rust `orders` plugin. Built by
// `make plugins`: bindings from wit/ (plugin-build c-bindings), clang for
// wasm32-wasi, then a component with the WASI adapter (plugin-build component).

#include "consumer.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// The order event types the redis.io guide produces.
static const char *const ORDER_TYPES[] = {"order.placed", "order.paid", "order.shipped", "order.cancelled"};

// A byte slice of the entry (not NUL-terminated).
typedef struct {
  const uint8_t *ptr;
  size_t len;
} slice_t;

// Formats into a heap string owned by `out` (freed by the caller or by the
// bindings' post-return).
static void vformat(consumer_string_t *out, const char *fmt, va_list args) {
  va_list again;
  va_copy(again, args);
  int n = vsnprintf(NULL, 0, fmt, args);
  char *text = malloc((size_t)n + 1);
  vsnprintf(text, (size_t)n + 1, fmt, again);
  va_end(again);
  out->ptr = (uint8_t *)text;
  out->len = (size_t)n;
}

static void format(consumer_string_t *out, const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vformat(out, fmt, args);
  va_end(args);
}

static void log_line(redis_streams_plugin_log_level_t level, const char *fmt, ...) {
  consumer_string_t message;
  va_list args;
  va_start(args, fmt);
  vformat(&message, fmt, args);
  va_end(args);
  redis_streams_plugin_log_log(level, &message);
  consumer_string_free(&message);
}

// Quotes like Rust's `{:?}` does for plain text, so log lines match the Rust
// plugin. Returns a heap string.
static char *quote(slice_t s) {
  char *out = malloc(s.len * 8 + 3), *p = out;
  *p++ = '"';
  for (size_t i = 0; i < s.len; i++) {
    uint8_t c = s.ptr[i];
    if (c == '"' || c == '\\') { *p++ = '\\'; *p++ = (char)c; }
    else if (c == '\n') { *p++ = '\\'; *p++ = 'n'; }
    else if (c == '\r') { *p++ = '\\'; *p++ = 'r'; }
    else if (c == '\t') { *p++ = '\\'; *p++ = 't'; }
    else if (c < 0x20 || c == 0x7f) p += sprintf(p, "\\u{%x}", c);
    else *p++ = (char)c;
  }
  *p++ = '"';
  *p = 0;
  return out;
}

static slice_t cstr(const char *s) { return (slice_t){(const uint8_t *)s, strlen(s)}; }

static bool equals(slice_t a, const char *b) { return a.len == strlen(b) && memcmp(a.ptr, b, a.len) == 0; }

// Is `s` valid UTF-8 (no overlong forms, no surrogates, at most U+10FFFF)?
static bool is_utf8(slice_t s) {
  static const uint32_t MIN[] = {0, 0x80, 0x800, 0x10000};
  size_t i = 0;
  while (i < s.len) {
    uint8_t c = s.ptr[i];
    size_t more = c < 0x80 ? 0 : (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : 4;
    if (more == 4 || i + more >= s.len) return false;
    uint32_t cp = more == 0 ? c : c & (0x3fu >> more);
    for (size_t k = 1; k <= more; k++) {
      if ((s.ptr[i + k] & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (s.ptr[i + k] & 0x3f);
    }
    if (cp < MIN[more] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += more + 1;
  }
  return true;
}

// The first field called `name`, as non-empty UTF-8 text; else the reason in `why`.
static bool text(const consumer_entry_t *entry, const char *name, slice_t *value, consumer_string_t *why) {
  for (size_t i = 0; i < entry->fields.len; i++) {
    const redis_streams_plugin_types_field_t *f = &entry->fields.ptr[i];
    if (!equals((slice_t){f->name.ptr, f->name.len}, name)) continue;
    char *q = quote(cstr(name));
    *value = (slice_t){f->value.ptr, f->value.len};
    bool ok = false;
    if (!is_utf8(*value)) format(why, "field %s is not UTF-8", q);
    else if (value->len == 0) format(why, "field %s is empty", q);
    else ok = true;
    free(q);
    return ok;
  }
  char *q = quote(cstr(name));
  format(why, "missing field %s", q);
  free(q);
  return false;
}

// A non-negative decimal amount with at most two decimals ("12", "12.5",
// "12.50") in cents; false when malformed or above u64.
static bool parse_cents(slice_t amount, uint64_t *cents) {
  size_t dot = amount.len;
  for (size_t i = 0; i < amount.len; i++) {
    if (amount.ptr[i] == '.') { dot = i; break; }
  }
  size_t fraction = dot < amount.len ? amount.len - dot - 1 : 0;
  if (dot == 0 || (dot < amount.len && fraction == 0) || fraction > 2) return false;
  uint64_t units = 0;
  for (size_t i = 0; i < amount.len; i++) {
    if (i == dot) continue;
    uint8_t c = amount.ptr[i];
    if (c < '0' || c > '9') return false;
    if (i < dot && (units > (UINT64_MAX - 9) / 10)) return false;
    if (i < dot) units = units * 10 + (c - '0');
  }
  uint64_t frac = 0;
  for (size_t i = dot + 1; i < amount.len; i++) frac = frac * 10 + (amount.ptr[i] - '0');
  if (fraction == 1) frac *= 10;
  if (units > (UINT64_MAX - frac) / 100) return false;
  *cents = units * 100 + frac;
  return true;
}

// Is there a field `name` whose value is exactly `value`?
static bool has_field(const consumer_entry_t *entry, const char *name, const char *value) {
  for (size_t i = 0; i < entry->fields.len; i++) {
    const redis_streams_plugin_types_field_t *f = &entry->fields.ptr[i];
    if (equals((slice_t){f->name.ptr, f->name.len}, name) && equals((slice_t){f->value.ptr, f->value.len}, value))
      return true;
  }
  return false;
}

typedef enum { HANDLED, REJECT, RETRY } outcome_t;

// Validates the order; a reject or retry sets its reason in `why`.
static outcome_t handle(const consumer_entry_t *entry, consumer_string_t *why) {
  slice_t kind, order_id, customer, amount;
  if (!text(entry, "type", &kind, why)) return REJECT;
  bool known = false;
  for (size_t i = 0; i < sizeof ORDER_TYPES / sizeof *ORDER_TYPES; i++) known |= equals(kind, ORDER_TYPES[i]);
  if (!known) {
    char *q = quote(kind);
    format(why, "unknown order type %s", q);
    free(q);
    return REJECT;
  }
  if (!text(entry, "order_id", &order_id, why) || !text(entry, "customer", &customer, why) ||
      !text(entry, "amount", &amount, why))
    return REJECT;
  uint64_t cents;
  if (!parse_cents(amount, &cents)) {
    char *q = quote(amount);
    format(why, "malformed amount %s", q);
    free(q);
    return REJECT;
  }
  if (has_field(entry, "payment", "pending")) {
    format(why, "payment of %.*s still pending", (int)order_id.len, order_id.ptr);
    return RETRY;
  }
  slice_t verb = {kind.ptr + 6, kind.len - 6};  // without "order."
  log_line(REDIS_STREAMS_PLUGIN_LOG_LEVEL_INFO, "order %.*s %.*s for %.*s: amount %" PRIu64 ".%02" PRIu64,
           (int)order_id.len, order_id.ptr, (int)verb.len, verb.ptr, (int)customer.len, customer.ptr, cents / 100,
           cents % 100);
  return HANDLED;
}

bool exports_consumer_handle(consumer_entry_t *entry, consumer_error_t *err) {
  consumer_string_t why = {0};
  outcome_t outcome = handle(entry, &why);
  // Reasons are freed by the bindings' post-return once the host has copied them.
  if (outcome == REJECT) {
    log_line(REDIS_STREAMS_PLUGIN_LOG_LEVEL_WARN, "rejecting %.*s: %.*s", (int)entry->id.len, entry->id.ptr,
             (int)why.len, why.ptr);
    err->tag = REDIS_STREAMS_PLUGIN_TYPES_ERROR_REJECT;
    err->val.reject = why;
  } else if (outcome == RETRY) {
    log_line(REDIS_STREAMS_PLUGIN_LOG_LEVEL_WARN, "retrying %.*s: %.*s", (int)entry->id.len, entry->id.ptr,
             (int)why.len, why.ptr);
    err->tag = REDIS_STREAMS_PLUGIN_TYPES_ERROR_RETRY;
    err->val.retry.reason = why;
    err->val.retry.delay_ms = (consumer_option_u64_t){true, 1000};
  }
  consumer_entry_free(entry);  // the guest owns its arguments
  return outcome == HANDLED;
}

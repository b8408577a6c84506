//! Example plugin in Zig: validates the order events of the redis.io streaming
//! guide (`type`, `order_id`, `customer`, `amount`) and logs one line per
//! order. A missing or malformed field is permanent: the entry is rejected. An
//! order whose `payment` field is `pending` is retried (in 1 s, at the earliest).
//!
//! Same behaviour, verdicts and log lines as the Rust `orders` plugin. Built by
//! `make plugins`: C bindings from wit/ (plugin-build c-bindings) imported
//! here, `zig build-exe` for wasm32-wasi, then a component with the WASI
//! adapter (plugin-build component).

const std = @import("std");
const c = @import("consumer");

/// The order event types the redis.io guide produces.
const order_types = [_][]const u8{ "order.placed", "order.paid", "order.shipped", "order.cancelled" };

const alloc = std.heap.c_allocator;

/// Why an entry can never be handled (the text goes back to the host).
const Invalid = struct { why: []u8 };
/// Why an entry must be delivered again later.
const Later = struct { why: []u8 };

fn invalid(comptime fmt: []const u8, args: anytype) Invalid {
    return .{ .why = std.fmt.allocPrint(alloc, fmt, args) catch @panic("out of memory") };
}

export fn exports_consumer_handle(entry: *c.consumer_entry_t, err: *c.consumer_error_t) bool {
    defer c.consumer_entry_free(entry); // the guest owns its arguments
    const id = bytes(entry.id);
    switch (handle(entry)) {
        .ok => return true,
        .invalid => |bad| {
            defer alloc.free(bad.why);
            log(c.REDIS_STREAMS_PLUGIN_LOG_LEVEL_WARN, "rejecting {s}: {s}", .{ id, bad.why });
            err.tag = c.REDIS_STREAMS_PLUGIN_TYPES_ERROR_REJECT;
            err.val.reject = mallocString(bad.why);
            return false;
        },
        .retry => |later| {
            defer alloc.free(later.why);
            log(c.REDIS_STREAMS_PLUGIN_LOG_LEVEL_WARN, "retrying {s}: {s}", .{ id, later.why });
            err.tag = c.REDIS_STREAMS_PLUGIN_TYPES_ERROR_RETRY;
            err.val.retry = .{ .reason = mallocString(later.why), .delay_ms = .{ .is_some = true, .val = 1000 } };
            return false;
        },
    }
}

/// A copy made with malloc: the bindings' post-return frees it with free().
fn mallocString(s: []const u8) c.consumer_string_t {
    const copy: [*]u8 = @ptrCast(std.c.malloc(s.len) orelse @panic("out of memory"));
    @memcpy(copy[0..s.len], s);
    return .{ .ptr = copy, .len = s.len };
}

const Outcome = union(enum) { ok, invalid: Invalid, retry: Later };
const Text = union(enum) { value: []const u8, invalid: Invalid };

fn handle(entry: *const c.consumer_entry_t) Outcome {
    const kind = switch (text(entry, "type")) {
        .value => |v| v,
        .invalid => |bad| return .{ .invalid = bad },
    };
    if (!isOrderType(kind)) return .{ .invalid = quoted("unknown order type ", kind) };
    const order_id = switch (text(entry, "order_id")) {
        .value => |v| v,
        .invalid => |bad| return .{ .invalid = bad },
    };
    const customer = switch (text(entry, "customer")) {
        .value => |v| v,
        .invalid => |bad| return .{ .invalid = bad },
    };
    const amount = switch (text(entry, "amount")) {
        .value => |v| v,
        .invalid => |bad| return .{ .invalid = bad },
    };
    const cents = parseCents(amount) orelse return .{ .invalid = quoted("malformed amount ", amount) };
    if (hasField(entry, "payment", "pending")) {
        const why = std.fmt.allocPrint(alloc, "payment of {s} still pending", .{order_id}) catch @panic("out of memory");
        return .{ .retry = .{ .why = why } };
    }
    log(c.REDIS_STREAMS_PLUGIN_LOG_LEVEL_INFO, "order {s} {s} for {s}: amount {d}.{d:0>2}", .{
        order_id, kind["order.".len..], customer, cents / 100, cents % 100,
    });
    return .ok;
}

fn hasField(entry: *const c.consumer_entry_t, name: []const u8, value: []const u8) bool {
    for (entry.fields.ptr[0..entry.fields.len]) |field| {
        if (std.mem.eql(u8, bytes(field.name), name) and std.mem.eql(u8, bytes(field.value), value)) return true;
    }
    return false;
}

/// A C string or byte list as a slice (empty ones may have a null pointer).
fn bytes(s: anytype) []const u8 {
    return if (s.len == 0) "" else s.ptr[0..s.len];
}

fn isOrderType(kind: []const u8) bool {
    for (order_types) |t| {
        if (std.mem.eql(u8, t, kind)) return true;
    }
    return false;
}

/// The first field called `name`, as non-empty UTF-8 text.
fn text(entry: *const c.consumer_entry_t, name: []const u8) Text {
    for (entry.fields.ptr[0..entry.fields.len]) |field| {
        if (!std.mem.eql(u8, bytes(field.name), name)) continue;
        const value = bytes(field.value);
        if (!std.unicode.utf8ValidateSlice(value)) return .{ .invalid = quotedAround("field ", name, " is not UTF-8") };
        if (value.len == 0) return .{ .invalid = quotedAround("field ", name, " is empty") };
        return .{ .value = value };
    }
    return .{ .invalid = quoted("missing field ", name) };
}

/// A non-negative decimal amount with at most two decimals ("12", "12.5",
/// "12.50") in cents; null when malformed or above u64.
fn parseCents(amount: []const u8) ?u64 {
    const dot = std.mem.indexOfScalar(u8, amount, '.');
    const units = amount[0 .. dot orelse amount.len];
    const fraction = if (dot) |d| amount[d + 1 ..] else "";
    if (!digits(units) or (dot != null and !digits(fraction)) or fraction.len > 2) return null;
    var cents: u64 = 0;
    for (fraction) |d| cents = cents * 10 + (d - '0');
    if (fraction.len == 1) cents *= 10;
    const whole = std.fmt.parseUnsigned(u64, units, 10) catch return null;
    const scaled = std.math.mul(u64, whole, 100) catch return null;
    return std.math.add(u64, scaled, cents) catch null;
}

fn digits(s: []const u8) bool {
    if (s.len == 0) return false;
    for (s) |d| {
        if (d < '0' or d > '9') return false;
    }
    return true;
}

fn quoted(comptime before: []const u8, s: []const u8) Invalid {
    return quotedAround(before, s, "");
}

/// `before` + `s` quoted like Rust's `{:?}` does for plain text (so log lines
/// match the Rust plugin) + `after`.
fn quotedAround(comptime before: []const u8, s: []const u8, comptime after: []const u8) Invalid {
    const buf = alloc.alloc(u8, before.len + s.len * 8 + 2 + after.len) catch @panic("out of memory");
    var n: usize = 0;
    for (before ++ "\"") |b| {
        buf[n] = b;
        n += 1;
    }
    for (s) |b| {
        const escaped: []const u8 = switch (b) {
            '"' => "\\\"",
            '\\' => "\\\\",
            '\n' => "\\n",
            '\r' => "\\r",
            '\t' => "\\t",
            0...8, 11, 12, 14...0x1f, 0x7f => std.fmt.bufPrint(buf[n..], "\\u{{{x}}}", .{b}) catch unreachable,
            else => &[_]u8{b},
        };
        if (escaped.ptr != buf[n..].ptr) @memcpy(buf[n .. n + escaped.len], escaped);
        n += escaped.len;
    }
    for ("\"" ++ after) |b| {
        buf[n] = b;
        n += 1;
    }
    return .{ .why = buf[0..n] };
}

fn log(level: c.redis_streams_plugin_log_level_t, comptime fmt: []const u8, args: anytype) void {
    const line = std.fmt.allocPrint(alloc, fmt, args) catch @panic("out of memory");
    defer alloc.free(line);
    var message = c.consumer_string_t{ .ptr = line.ptr, .len = line.len };
    c.redis_streams_plugin_log_log(level, &message);
}

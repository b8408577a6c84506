//! {{name}}: a redis-wasm-host consumer plugin. exports_consumer_handle is
//! called once per stream entry: returning true acks it; returning false with
//! `err` set to a retry leaves it pending, to a reject dead-letters it.
//! The plugin owns `entry` (free it); strings it returns must be malloc'ed.

const std = @import("std");
const c = @import("consumer");

export fn exports_consumer_handle(entry: *c.consumer_entry_t, err: *c.consumer_error_t) bool {
    defer c.consumer_entry_free(entry);
    var any = false;
    for (entry.fields.ptr[0..entry.fields.len]) |field| any = any or field.value.len > 0;
    if (!any) {
        err.tag = c.REDIS_STREAMS_PLUGIN_TYPES_ERROR_REJECT;
        c.consumer_string_dup(&err.val.reject, "every field is empty");
        return false;
    }
    var buf: [256]u8 = undefined;
    const id = entry.id.ptr[0..entry.id.len];
    const line = std.fmt.bufPrint(&buf, "{{name}} handled {s} ({d} fields)", .{ id, entry.fields.len }) catch buf[0..];
    var message = c.consumer_string_t{ .ptr = line.ptr, .len = line.len };
    c.redis_streams_plugin_log_log(c.REDIS_STREAMS_PLUGIN_LOG_LEVEL_INFO, &message);
    return true;
}

// {{name}}: a redis-wasm-host consumer plugin. exports_consumer_handle is
// called once per stream entry: returning true acks it; returning false with
// `err` set to a retry leaves it pending, to a reject dead-letters it.
// The plugin owns `entry` (free it); strings it returns must be malloc'ed.

#include "consumer.h"

#include <stdio.h>
#include <stdlib.h>

bool exports_consumer_handle(consumer_entry_t *entry, consumer_error_t *err) {
  bool any = false;
  for (size_t i = 0; i < entry->fields.len; i++) any |= entry->fields.ptr[i].value.len > 0;
  if (any) {
    char line[256];
    int n = snprintf(line, sizeof line, "{{name}} handled %.*s (%zu fields)", (int)entry->id.len,
                     (const char *)entry->id.ptr, entry->fields.len);
    consumer_string_t message = {(uint8_t *)line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1};
    redis_streams_plugin_log_log(REDIS_STREAMS_PLUGIN_LOG_LEVEL_INFO, &message);
  } else {
    err->tag = REDIS_STREAMS_PLUGIN_TYPES_ERROR_REJECT;
    consumer_string_dup(&err->val.reject, "every field is empty");
  }
  consumer_entry_free(entry);
  return any;
}

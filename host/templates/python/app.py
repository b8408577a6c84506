"""{{name}}: a redis-wasm-host consumer plugin. `handle` is called once per
stream entry: returning acks it; raising Err(Error_Retry(...)) leaves it
pending for a later delivery, Err(Error_Reject(...)) dead-letters it."""

import wit_world
from componentize_py_types import Err
from wit_world.imports.log import Level, log
from wit_world.imports.types import Entry, Error_Reject


class WitWorld(wit_world.WitWorld):
    def handle(self, entry: Entry) -> None:
        if all(not f.value for f in entry.fields):
            raise Err(Error_Reject("every field is empty"))
        log(Level.INFO, f"{{name}} handled {entry.id} ({len(entry.fields)} fields)")

//! Sandbox limits of one plugin instance, beyond the per-call deadline: one
//! budget for all its linear memories and tables together (a failed grow
//! traps; an instantiation over it fails), caps on how many instances,
//! memories and tables it makes, on the size of what a plugin returns, and
//! optionally on fuel (instructions) per call. Breaking one is a fault: the
//! entry stays pending, the instance is recycled, the host keeps serving.
//! The limits themselves are plain settings (`settings.rs`); this module
//! enforces them.

pub use crate::settings::{Grants, Limits};
use wasmtime::ResourceLimiter;

/// Table elements of all tables of an instance together (8 MiB of host
/// memory): generous for real components (Python's uses a few thousand), fatal
/// for a bomb.
const MAX_TABLE_ELEMENTS: usize = 1 << 20;
/// Counts per instance, well above what real components make (every bundled
/// plugin, Python and JavaScript runtimes included, has one memory and two
/// tables). Each memory reserves its own span of address space (4 GiB plus
/// guards) even when empty, hence the low cap.
const MAX_INSTANCES: usize = 1_000;
const MAX_TABLES: usize = 100;
const MAX_MEMORIES: usize = 16;
/// Host memory per table element: a pointer (wasmtime's `ResourceLimiter` docs).
const TABLE_ELEMENT_BYTES: usize = std::mem::size_of::<usize>();

impl Limits {
    /// The limiter of one instance's store, enforcing these limits.
    pub fn limiter(&self) -> StoreLimiter {
        StoreLimiter { max_bytes: self.max_memory_bytes, used_bytes: 0, table_elements: 0 }
    }
}

/// Counts what one store (one plugin instance) has taken. wasmtime's own
/// `StoreLimits` caps each memory and table on its own, so a component with
/// many memories or tables could take ~100 times the limit; here they share
/// one budget. Memories and tables never shrink, and a store whose growth
/// failed traps and is dropped, so the counts only go up.
pub struct StoreLimiter {
    /// The budget: `Limits::max_memory_bytes`.
    max_bytes: usize,
    /// Bytes of all memories and tables so far.
    used_bytes: usize,
    /// Elements of all tables so far.
    table_elements: usize,
}

impl StoreLimiter {
    /// Takes `more` bytes of the budget for `what`, or says why not.
    fn take(&mut self, more: usize, what: &str) -> wasmtime::Result<()> {
        let total = self.used_bytes.saturating_add(more);
        if total > self.max_bytes {
            wasmtime::bail!(
                "plugin memory limit: {what} would bring the instance's memories and tables to {} KiB, \
                 over its limit of {} KiB (max-memory-mb)",
                total >> 10,
                self.max_bytes >> 10
            );
        }
        self.used_bytes = total;
        Ok(())
    }
}

impl ResourceLimiter for StoreLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|max| desired > max) {
            wasmtime::bail!("a linear memory cannot grow to {desired} bytes, past its declared maximum");
        }
        let what = if current == 0 {
            format!("a new linear memory of {} KiB", desired >> 10)
        } else {
            format!("growing a linear memory from {} to {} KiB", current >> 10, desired >> 10)
        };
        self.take(desired.saturating_sub(current), &what)?;
        Ok(true)
    }

    /// A growth allowed above that failed anyway (out of address space): a
    /// trap, as for a denied one.
    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error.context("a linear memory failed to grow"))
    }

    fn table_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> wasmtime::Result<bool> {
        if maximum.is_some_and(|max| desired > max) {
            wasmtime::bail!("a table cannot grow to {desired} elements, past its declared maximum");
        }
        let more = desired.saturating_sub(current);
        let elements = self.table_elements.saturating_add(more);
        if elements > MAX_TABLE_ELEMENTS {
            wasmtime::bail!(
                "plugin table limit: the instance's tables would hold {elements} elements, over the limit \
                 of {MAX_TABLE_ELEMENTS}"
            );
        }
        self.take(more.saturating_mul(TABLE_ELEMENT_BYTES), &format!("a table of {desired} elements"))?;
        self.table_elements = elements;
        Ok(true)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        Err(error.context("a table failed to grow"))
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memories_and_tables_share_one_budget() {
        let limits = Limits { max_memory_bytes: 10 << 20, ..Limits::default() };
        let mut limiter = limits.limiter();
        // Each memory alone is under the limit; together they are not.
        assert!(limiter.memory_growing(0, 4 << 20, None).unwrap());
        assert!(limiter.memory_growing(0, 4 << 20, None).unwrap());
        let error = limiter.memory_growing(0, 4 << 20, None).unwrap_err();
        assert!(format!("{error}").contains("over its limit of 10240 KiB"), "{error}");
        // Tables count too, a pointer per element: 2 MiB left is 262144 elements.
        assert!(limiter.table_growing(0, 200_000, None).unwrap());
        assert!(limiter.table_growing(200_000, 300_000, None).is_err());
    }

    #[test]
    fn table_elements_are_capped_across_tables() {
        let mut limiter = Limits::default().limiter();
        assert!(limiter.table_growing(0, MAX_TABLE_ELEMENTS / 2, None).unwrap());
        assert!(limiter.table_growing(0, MAX_TABLE_ELEMENTS / 2, None).unwrap());
        let error = limiter.table_growing(0, 1, None).unwrap_err();
        assert!(format!("{error}").contains("plugin table limit"), "{error}");
    }

    #[test]
    fn growth_past_a_declared_maximum_traps() {
        let mut limiter = Limits::default().limiter();
        assert!(limiter.memory_growing(0, 1 << 16, Some(1 << 16)).unwrap());
        assert!(limiter.memory_growing(1 << 16, 2 << 16, Some(1 << 16)).is_err());
    }
}

//! One memory budget across all of an instance's memories and tables.

/// Counts growth of every linear memory and table in one store against one
/// budget. Remembers whether it refused growth, so a trap that follows (the
/// guest's allocator aborting) is reported as memory exhaustion.
#[derive(Debug)]
pub struct MemoryBudget {
    limit_bytes: usize,
    used_bytes: usize,
    table_elements_limit: usize,
    pub refused: bool,
}

impl MemoryBudget {
    pub fn new(limit_bytes: usize) -> Self {
        MemoryBudget {
            limit_bytes,
            used_bytes: 0,
            table_elements_limit: 100_000,
            refused: false,
        }
    }

    pub fn used_bytes(&self) -> usize {
        self.used_bytes
    }
}

impl wasmtime::ResourceLimiter for MemoryBudget {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let extra = desired.saturating_sub(current);
        match self.used_bytes.checked_add(extra) {
            Some(total) if total <= self.limit_bytes => {
                self.used_bytes = total;
                Ok(true)
            }
            _ => {
                self.refused = true;
                Ok(false)
            }
        }
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired <= self.table_elements_limit {
            Ok(true)
        } else {
            self.refused = true;
            Ok(false)
        }
    }

    fn instances(&self) -> usize {
        64
    }
    fn tables(&self) -> usize {
        64
    }
    fn memories(&self) -> usize {
        8
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmtime::ResourceLimiter;

    #[test]
    fn the_budget_is_shared_by_all_memories() -> wasmtime::Result<()> {
        let mut b = MemoryBudget::new(10 << 20);
        assert!(b.memory_growing(0, 6 << 20, None)?, "first memory");
        assert!(
            !b.memory_growing(0, 6 << 20, None)?,
            "second memory would exceed the total"
        );
        assert!(b.refused);
        assert!(b.memory_growing(0, 4 << 20, None)?);
        assert_eq!(b.used_bytes(), 10 << 20);
        Ok(())
    }
}

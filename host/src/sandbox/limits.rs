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

#[cfg(test)]
mod wasm_tests {
    //! The budget inside a real store: a component with two memories cannot
    //! get twice the budget.
    use super::*;
    use wasmtime::Store;
    use wasmtime::component::{Component, Linker};

    const TWO_MEMORIES: &str = r#"
        (component
          (core module $m
            (memory $a 1)
            (memory $b 1)
            (func (export "grow") (param i32) (result i32)
              ;; grow memory a by the given pages, then b by the same; return
              ;; 1 if both succeeded, 0 if b was refused, -1 if a was refused
              (if (i32.eq (memory.grow $a (local.get 0)) (i32.const -1))
                (then (return (i32.const -1))))
              (if (i32.eq (memory.grow $b (local.get 0)) (i32.const -1))
                (then (return (i32.const 0))))
              (i32.const 1)))
          (core instance $i (instantiate $m))
          (func (export "grow") (param "pages" u32) (result s32)
            (canon lift (core func $i "grow"))))
    "#;

    #[tokio::test]
    async fn two_memories_share_one_budget() -> Result<(), Box<dyn std::error::Error>> {
        let engine = crate::sandbox::new_engine()?;
        let component = Component::new(&engine, TWO_MEMORIES)?;
        let linker: Linker<MemoryBudget> = Linker::new(&engine);
        // 32 MiB budget; each memory starts at one 64 KiB page.
        let mut store = Store::new(&engine, MemoryBudget::new(32 << 20));
        store.limiter(|b| b);
        store.set_epoch_deadline(1_000);
        let instance = linker.instantiate_async(&mut store, &component).await?;
        let grow = instance.get_typed_func::<(u32,), (i32,)>(&mut store, "grow")?;
        // 256 pages = 16 MiB per memory: a fits, b would pass 32 MiB in total.
        let (r,) = grow.call_async(&mut store, (256,)).await?;
        assert_eq!(r, 0, "the second memory's growth is refused");
        assert!(store.data().refused);
        assert!(store.data().used_bytes() <= 32 << 20);
        Ok(())
    }
}

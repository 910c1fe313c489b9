//! Runtime configuration: per-call limits and the one wasmtime engine.
//! Every engine knob is set here, with the reason for its value.

use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

/// The bounds every plugin call runs under.
#[derive(Debug, Clone)]
pub struct CallLimits {
    /// Linear memory one call may hold, across all its memories.
    pub memory_bytes: usize,
    /// Table elements one table may hold.
    pub table_elements: usize,
    /// WebAssembly execution time one call may use, measured in epoch ticks.
    pub cpu_time: Duration,
    /// Wall-clock time one call may take, including time blocked in WASI.
    pub wall_time: Duration,
    /// Bytes one call may return: every string's and list's bytes, each
    /// string and list element counting
    /// [`ELEMENT_OVERHEAD`](crate::policy::bounds::ELEMENT_OVERHEAD) more, so
    /// a list of empty strings is not free. 1 MiB.
    pub output_bytes: usize,
    /// Model ids one verdict (discovered models) or manifest (default
    /// models) may carry. 4,096: the largest public catalogues list a few
    /// hundred; a picker of thousands is already unusable.
    pub model_ids: usize,
    /// Bytes of stdout and of stderr kept per call; the rest is dropped.
    pub stdio_bytes: usize,
}

impl Default for CallLimits {
    fn default() -> Self {
        CallLimits {
            memory_bytes: 64 << 20,
            table_elements: 100_000,
            cpu_time: Duration::from_millis(500),
            wall_time: Duration::from_secs(2),
            output_bytes: 1 << 20,
            model_ids: 4_096,
            stdio_bytes: 64 << 10,
        }
    }
}

/// How the runtime is set up.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Per-call bounds.
    pub limits: CallLimits,
    /// Plugin calls in flight at once; further calls wait. Also sizes the
    /// instance pool, so a full pool is a wait, never an error.
    pub max_concurrent_calls: u32,
    /// How often the epoch advances; the CPU bound's resolution.
    pub epoch_tick: Duration,
    /// Where compiled components are cached; `None` compiles every load.
    pub cache_dir: Option<std::path::PathBuf>,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            limits: CallLimits::default(),
            max_concurrent_calls: 64,
            epoch_tick: Duration::from_millis(10),
            cache_dir: None,
        }
    }
}

/// The largest linear memory any plugin may reserve: the pool's slot size.
/// Per-call limits ([`CallLimits::memory_bytes`]) must not exceed it.
pub const MAX_MEMORY_BYTES: usize = 512 << 20;

/// Linear memory per slot reset in place rather than decommitted.
const KEEP_RESIDENT_BYTES: usize = 2 << 20;

/// Core instances one component may create. Rust components use a handful;
/// componentize-py and jco components use more.
const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 64;

/// Builds the engine. One engine serves every plugin.
pub fn build_engine(config: &RuntimeConfig) -> wasmtime::Result<Engine> {
    let calls = config.max_concurrent_calls.max(1);
    let mut pool = PoolingAllocationConfig::new();
    // One component instance per call in flight; the call semaphore keeps
    // demand within the pool.
    pool.total_component_instances(calls);
    pool.total_stacks(calls);
    pool.max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT);
    pool.total_core_instances(calls * 16);
    // Memories and tables: several per component for guest languages that
    // bring their own runtime (Python, JavaScript).
    pool.max_memories_per_component(8);
    pool.max_tables_per_component(16);
    pool.total_memories(calls * 4);
    pool.total_tables(calls * 8);
    pool.max_memory_size(MAX_MEMORY_BYTES);
    pool.table_elements(config.limits.table_elements);
    // VM context sizes: interpreters declare many functions and globals.
    pool.max_core_instance_size(4 << 20);
    pool.max_component_instance_size(4 << 20);
    // Keep a few slots warm so instantiation reuses mapped memory.
    pool.max_unused_warm_slots(calls.min(16));
    // Reset used slots by rewriting only their dirty pages (PAGEMAP_SCAN,
    // Linux 6.7+; falls back to memset) instead of madvise: a call's pages
    // stay resident, so the next call on the slot takes no page faults and
    // no TLB shootdown. Measured: this is most of a fresh call's cost.
    pool.pagemap_scan(wasmtime::Enabled::Auto);
    pool.linear_memory_keep_resident(KEEP_RESIDENT_BYTES);
    pool.table_keep_resident(64 << 10);

    let mut wasm = Config::new();
    // Components only; core modules are not plugins.
    wasm.wasm_component_model(true);
    // Component-model async (the new ABI) is not compiled in: it costs ~1 µs
    // per call and no plugin needs it. Host-side async (fibers) is what lets
    // a wall-clock timeout cancel a call.
    // The CPU bound: an epoch tick thread advances the epoch; a store's
    // callback counts ticks and traps past the budget. Cheaper than fuel.
    wasm.epoch_interruption(true);
    // Pooled slots with copy-on-write memory images: instantiation in µs.
    wasm.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    wasm.memory_init_cow(true);
    // Guest stack for deep recursion, and the fiber stack that holds it.
    wasm.max_wasm_stack(1 << 20);
    wasm.async_stack_size(2 << 20);
    // Plugins are compiled once (then cached); favour run-time speed.
    wasm.cranelift_opt_level(OptLevel::Speed);
    wasm.parallel_compilation(true);
    Engine::new(&wasm)
}

//! Per-call store state: deny-all WASI, the resource limiter, the CPU tick
//! counter and bounded stdout/stderr capture.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::config::CallLimits;

/// The state of one store, which lives for exactly one call.
pub struct StoreState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limiter: CallLimiter,
    /// Epoch ticks the guest has run through.
    pub(crate) ticks: u64,
    /// Set when the CPU budget ran out.
    pub(crate) cpu_exhausted: bool,
    pub(crate) stdout: Capture,
    pub(crate) stderr: Capture,
}

impl StoreState {
    /// A fresh state: no filesystem, no network, no environment, no args,
    /// stdin closed, stdout and stderr captured up to `limits.stdio_bytes`.
    pub fn new(limits: &CallLimits) -> Self {
        let stdout = Capture::new(limits.stdio_bytes);
        let stderr = Capture::new(limits.stdio_bytes);
        let mut wasi = WasiCtxBuilder::new();
        // Deny by default, explicitly: WasiCtxBuilder::new grants no preopens,
        // no env and no args; sockets and name lookup are switched off too.
        wasi.allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .stdout(stdout.clone())
            .stderr(stderr.clone());
        StoreState {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limiter: CallLimiter::new(limits),
            ticks: 0,
            cpu_exhausted: false,
            stdout,
            stderr,
        }
    }
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Bounds linear memory and tables for one call, and remembers a denial so
/// the resulting trap can be reported as a memory limit.
pub struct CallLimiter {
    memory_bytes: usize,
    table_elements: usize,
    memory_in_use: usize,
    /// The growth that was refused, in bytes wanted.
    pub(crate) memory_denied: Option<usize>,
}

impl CallLimiter {
    fn new(limits: &CallLimits) -> Self {
        CallLimiter {
            memory_bytes: limits.memory_bytes,
            table_elements: limits.table_elements,
            memory_in_use: 0,
            memory_denied: None,
        }
    }
}

impl ResourceLimiter for CallLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.memory_in_use - current.min(self.memory_in_use) + desired;
        if total > self.memory_bytes {
            self.memory_denied = Some(total);
            return Ok(false);
        }
        self.memory_in_use = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.table_elements)
    }
}

/// A stdout or stderr sink that keeps the first `capacity` bytes and drops
/// (and counts) the rest, so a chatty guest never fails a write.
#[derive(Clone)]
pub struct Capture {
    inner: Arc<Mutex<CaptureBuffer>>,
}

struct CaptureBuffer {
    bytes: Vec<u8>,
    capacity: usize,
    dropped: usize,
}

impl Capture {
    fn new(capacity: usize) -> Self {
        Capture {
            inner: Arc::new(Mutex::new(CaptureBuffer { bytes: Vec::new(), capacity, dropped: 0 })),
        }
    }

    fn append(&self, data: &[u8]) {
        let mut buffer = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let room = buffer.capacity - buffer.bytes.len();
        let kept = data.len().min(room);
        buffer.bytes.extend_from_slice(&data[..kept]);
        buffer.dropped += data.len() - kept;
    }

    /// What was kept, as text, and how many bytes were dropped.
    pub fn take(&self) -> (String, usize) {
        let mut buffer = self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let text = String::from_utf8_lossy(&buffer.bytes).into_owned();
        buffer.bytes.clear();
        (text, std::mem::take(&mut buffer.dropped))
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl OutputStream for Capture {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

impl tokio::io::AsyncWrite for Capture {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.append(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_keeps_the_head_and_counts_the_rest() {
        let capture = Capture::new(8);
        capture.append(b"hello ");
        capture.append(b"world");
        assert_eq!(capture.take(), ("hello wo".to_owned(), 3));
        assert_eq!(capture.take(), (String::new(), 0));
    }

    #[test]
    fn limiter_counts_all_memories_of_a_call() {
        let limits = CallLimits { memory_bytes: 100, ..CallLimits::default() };
        let mut limiter = CallLimiter::new(&limits);
        assert!(limiter.memory_growing(0, 60, None).unwrap());
        assert!(!limiter.memory_growing(0, 60, None).unwrap());
        assert_eq!(limiter.memory_denied, Some(120));
        assert!(limiter.memory_growing(60, 90, None).unwrap());
    }
}

//! Device memory in host RAM.
//!
//! Each allocation is one host block at a device address of its own. Addresses only grow and are
//! never reused, and every allocation is followed by an unmapped gap, so an access one past the end
//! or to freed memory faults instead of landing in a neighbour. Each byte has a shadow byte that
//! records whether it was ever written (by a copy, a memset or a kernel), so a kernel that reads
//! bytes never written is caught.

use std::cell::UnsafeCell;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use crate::error::{ErrorKind, Result, SimError};
use crate::ir::layout::GLOBAL_BASE;

/// Unmapped bytes after every allocation (and the alignment of every allocation's base).
pub const GAP: u64 = 1 << 16;

/// Shadow bit: the byte was written.
pub const INIT: u8 = 1;

/// One device allocation. Its bytes and shadow are shared with running launches (which hold an
/// `Arc`), written through raw pointers as a GPU would: two launches writing one allocation at
/// once is the program's race, not undefined behaviour here (bytes are `UnsafeCell`).
pub struct Allocation {
    pub base: u64,
    pub size: u64,
    data: Box<[UnsafeCell<u8>]>,
    shadow: Box<[UnsafeCell<u8>]>,
    /// Which CTA wrote and read each byte in which launch (see `exec`), made on first use.
    race: OnceLock<Box<[AtomicU64]>>,
}

// SAFETY: the bytes are plain data accessed through `UnsafeCell`; the simulator makes no
// assumption about their values across threads (like device memory).
unsafe impl Sync for Allocation {}
unsafe impl Send for Allocation {}

impl Allocation {
    fn new(base: u64, size: u64) -> Allocation {
        let n = size as usize;
        let zeros = || (0..n).map(|_| UnsafeCell::new(0u8)).collect::<Vec<_>>().into_boxed_slice();
        Allocation { base, size, data: zeros(), shadow: zeros(), race: OnceLock::new() }
    }
    /// The race shadow: one word per byte.
    pub fn race(&self) -> &[AtomicU64] {
        self.race.get_or_init(|| (0..self.size).map(|_| AtomicU64::new(0)).collect())
    }
    pub fn end(&self) -> u64 {
        self.base + self.size
    }
    pub fn contains(&self, addr: u64, len: u64) -> bool {
        addr >= self.base && addr.wrapping_add(len) <= self.end() && addr.wrapping_add(len) >= addr
    }
    /// Pointer to the byte at device address `addr` (which must be inside).
    #[inline]
    pub fn data_ptr(&self, addr: u64) -> *mut u8 {
        debug_assert!(addr >= self.base && addr <= self.end());
        // SAFETY: in bounds by the caller's check; UnsafeCell<u8> has u8's layout.
        unsafe { (self.data.as_ptr() as *mut u8).add((addr - self.base) as usize) }
    }
    #[inline]
    pub fn shadow_ptr(&self, addr: u64) -> *mut u8 {
        debug_assert!(addr >= self.base && addr <= self.end());
        // SAFETY: as `data_ptr`.
        unsafe { (self.shadow.as_ptr() as *mut u8).add((addr - self.base) as usize) }
    }
    /// Copies `src` in at `addr`, marking the bytes written.
    pub fn write(&self, addr: u64, src: &[u8]) {
        // SAFETY: the caller checked `contains(addr, src.len())`.
        unsafe {
            std::ptr::copy_nonoverlapping(src.as_ptr(), self.data_ptr(addr), src.len());
            std::ptr::write_bytes(self.shadow_ptr(addr), INIT, src.len());
        }
    }
    pub fn read(&self, addr: u64, dst: &mut [u8]) {
        // SAFETY: the caller checked `contains(addr, dst.len())`.
        unsafe { std::ptr::copy_nonoverlapping(self.data_ptr(addr), dst.as_mut_ptr(), dst.len()) }
    }
    /// Whether every byte of `[addr, addr + len)` was written; the first one that was not if not.
    pub fn first_unwritten(&self, addr: u64, len: u64) -> Option<u64> {
        (0..len).map(|i| addr + i).find(|&a| {
            // SAFETY: in bounds by the caller's check.
            unsafe { *self.shadow_ptr(a) & INIT == 0 }
        })
    }
}

/// A freed allocation, remembered so a use after free is reported as one.
#[derive(Clone, Copy, Debug)]
pub struct Freed {
    pub base: u64,
    pub size: u64,
}

/// The device's memory: live allocations sorted by address.
pub struct Memory {
    live: RwLock<Vec<Arc<Allocation>>>,
    freed: Mutex<Vec<Freed>>,
    next: Mutex<u64>,
    total: u64,
    used: Mutex<u64>,
}

/// A launch's view of memory: the live allocations when it started.
#[derive(Clone)]
pub struct Snapshot {
    pub allocs: Arc<Vec<Arc<Allocation>>>,
}

impl Snapshot {
    /// Index of the allocation holding `[addr, addr + len)`, if any.
    #[inline]
    pub fn find(&self, addr: u64, len: u64) -> Option<usize> {
        let a = &self.allocs;
        let i = a.partition_point(|x| x.base <= addr);
        if i == 0 {
            return None;
        }
        a[i - 1].contains(addr, len).then_some(i - 1)
    }
}

impl Memory {
    pub fn new(total: u64) -> Memory {
        Memory { live: RwLock::new(Vec::new()), freed: Mutex::new(Vec::new()), next: Mutex::new(GLOBAL_BASE), total, used: Mutex::new(0) }
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn used(&self) -> u64 {
        *lock(&self.used)
    }

    /// A new allocation of `size` bytes (at least 1; a 0-byte request gets 1 byte, as the
    /// driver's returns a valid pointer); its bytes are unwritten.
    pub fn alloc(&self, size: u64) -> Result<u64> {
        let size = size.max(1);
        {
            let mut used = lock(&self.used);
            if *used + size > self.total {
                return Err(SimError::new(
                    ErrorKind::OutOfMemory,
                    format!("out of device memory: {size} bytes asked, {} of {} in use", *used, self.total),
                ));
            }
            *used += size;
        }
        let base = {
            let mut next = lock(&self.next);
            let base = *next;
            *next = (base + size + GAP).div_ceil(GAP) * GAP;
            base
        };
        let alloc = Arc::new(Allocation::new(base, size));
        let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
        let at = live.partition_point(|x| x.base < base);
        live.insert(at, alloc);
        Ok(base)
    }

    /// Frees the allocation that starts at `ptr`.
    pub fn free(&self, ptr: u64) -> Result<()> {
        let mut live = self.live.write().unwrap_or_else(|e| e.into_inner());
        let Some(i) = live.iter().position(|a| a.base == ptr) else {
            let what = if lock(&self.freed).iter().any(|f| f.base == ptr) { "already freed" } else { "not the start of an allocation" };
            return Err(SimError::invalid(format!("cuMemFree: 0x{ptr:x} is {what}")));
        };
        let a = live.remove(i);
        *lock(&self.used) -= a.size;
        lock(&self.freed).push(Freed { base: a.base, size: a.size });
        Ok(())
    }

    /// The live allocations, for a launch.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot { allocs: Arc::new(self.live.read().unwrap_or_else(|e| e.into_inner()).clone()) }
    }

    fn find(&self, addr: u64, len: u64) -> Option<Arc<Allocation>> {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        let i = live.partition_point(|x| x.base <= addr);
        (i > 0 && live[i - 1].contains(addr, len)).then(|| live[i - 1].clone())
    }

    fn range(&self, what: &str, addr: u64, len: u64) -> Result<Arc<Allocation>> {
        self.find(addr, len).ok_or_else(|| SimError::invalid(format!("{what}: [0x{addr:x}, +{len}) {}", self.describe(addr))))
    }

    /// Host → device copy.
    pub fn write(&self, addr: u64, src: &[u8]) -> Result<()> {
        if src.is_empty() {
            return Ok(());
        }
        self.range("copy to device", addr, src.len() as u64)?.write(addr, src);
        Ok(())
    }

    /// Device → host copy.
    pub fn read(&self, addr: u64, dst: &mut [u8]) -> Result<()> {
        if dst.is_empty() {
            return Ok(());
        }
        self.range("copy from device", addr, dst.len() as u64)?.read(addr, dst);
        Ok(())
    }

    /// Device → device copy (the unwritten state of the source bytes travels with them).
    pub fn copy(&self, dst: u64, src: u64, len: u64) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let s = self.range("device copy source", src, len)?;
        let d = self.range("device copy destination", dst, len)?;
        // SAFETY: both ranges checked; `copy` handles overlap.
        unsafe {
            std::ptr::copy(s.data_ptr(src), d.data_ptr(dst), len as usize);
            std::ptr::copy(s.shadow_ptr(src), d.shadow_ptr(dst), len as usize);
        }
        Ok(())
    }

    pub fn memset(&self, addr: u64, value: u8, len: u64) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let a = self.range("memset", addr, len)?;
        // SAFETY: range checked.
        unsafe {
            std::ptr::write_bytes(a.data_ptr(addr), value, len as usize);
            std::ptr::write_bytes(a.shadow_ptr(addr), INIT, len as usize);
        }
        Ok(())
    }

    /// Says where `addr` is: inside or past which allocation, freed, or nowhere.
    pub fn describe(&self, addr: u64) -> String {
        let live = self.live.read().unwrap_or_else(|e| e.into_inner());
        describe_in(&live, &lock(&self.freed), addr)
    }

    pub fn freed(&self) -> Vec<Freed> {
        lock(&self.freed).clone()
    }
}

/// Where `addr` lies relative to the allocations `live` and `freed`.
pub fn describe_in(live: &[Arc<Allocation>], freed: &[Freed], addr: u64) -> String {
    if let Some(f) = freed.iter().find(|f| addr >= f.base && addr < f.base + f.size) {
        return format!("is in freed memory (a {}-byte allocation at 0x{:x}, offset {}): use after free", f.size, f.base, addr - f.base);
    }
    let i = live.partition_point(|x| x.base <= addr);
    if i > 0 {
        let a = &live[i - 1];
        if addr < a.end() {
            return format!("is inside the {}-byte allocation at 0x{:x} (offset {}) but runs past its end", a.size, a.base, addr - a.base);
        }
        return format!(
            "is {} bytes past the end of the {}-byte allocation at 0x{:x} (offset {} of it)",
            addr - a.end() + 1,
            a.size,
            a.base,
            addr - a.base
        );
    }
    "is not in any allocation".to_string()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

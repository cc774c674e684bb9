//! Device memory in host RAM.
//!
//! Each allocation is one host block at a device address of its own. Addresses only grow and are
//! never reused, and every allocation is followed by an unmapped gap, so an access one past the end
//! or to freed memory faults instead of landing in a neighbour. Each byte has a shadow byte that
//! records whether it was ever written (by a copy, a memset or a kernel), so a kernel that reads
//! bytes never written is caught.

use std::cell::UnsafeCell;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use crate::error::{ErrorKind, Result, SimError};
use crate::ir::layout::GLOBAL_BASE;

/// Unmapped bytes after every allocation (and the alignment of every allocation's base).
pub const GAP: u64 = 1 << 16;

/// Shadow bit: the byte was written.
pub const INIT: u8 = 1;

/// A CTA's identity in the race shadow is 1 + its linear index modulo `MULTI - 1` (0: none);
/// `MULTI` as a reader: several CTAs read the byte.
pub const MULTI: u64 = (1 << 20) - 1;

/// One device allocation. Its bytes and shadow are shared with running launches (which hold an
/// `Arc`), written through raw pointers as a GPU would: two launches writing one allocation at
/// once is the program's race, not undefined behaviour here (bytes are `UnsafeCell`).
pub struct Allocation {
    pub base: u64,
    pub size: u64,
    data: Box<[UnsafeCell<u8>]>,
    shadow: Box<[UnsafeCell<u8>]>,
    /// Which CTA wrote and read each byte in which launch, made on first use.
    race: OnceLock<RaceShadow>,
}

// SAFETY: the bytes are plain data accessed through `UnsafeCell`; the simulator makes no
// assumption about their values across threads (like device memory).
unsafe impl Sync for Allocation {}
unsafe impl Send for Allocation {}

/// `n` zero bytes, from the allocator's zeroed memory (pages the program never touches cost
/// nothing).
fn zeroed_cells(n: usize) -> Box<[UnsafeCell<u8>]> {
    let b: Box<[u8]> = vec![0u8; n].into_boxed_slice();
    // SAFETY: `UnsafeCell<u8>` is `repr(transparent)` over `u8` (same size, alignment and valid
    // values), so the slice's allocation and length carry over unchanged.
    unsafe { Box::from_raw(Box::into_raw(b) as *mut [UnsafeCell<u8>]) }
}

/// `n` zero words, as `zeroed_cells`.
fn zeroed_words(n: usize) -> Box<[AtomicU64]> {
    const _: () = assert!(std::mem::align_of::<AtomicU64>() == std::mem::align_of::<u64>());
    let b: Box<[u64]> = vec![0u64; n].into_boxed_slice();
    // SAFETY: `AtomicU64` has the size and bit validity of `u64` (documented) and, checked above,
    // its alignment; the slice's allocation and length carry over unchanged.
    unsafe { Box::from_raw(Box::into_raw(b) as *mut [AtomicU64]) }
}

impl Allocation {
    fn new(base: u64, size: u64) -> Allocation {
        let n = size as usize;
        Allocation { base, size, data: zeroed_cells(n), shadow: zeroed_cells(n), race: OnceLock::new() }
    }
    pub fn end(&self) -> u64 {
        self.base + self.size
    }
    #[inline]
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

    /// Records that CTA `me` (an identity as `MULTI` describes) of the launch tagged `tag`
    /// (24 bits, not 0) reads or writes the bytes at offsets `[o, o + len)` of the allocation
    /// (inside it), and reports the first byte, in address order, where that is a race with
    /// another CTA of the same launch: a read of a byte another CTA wrote, or a write of a byte
    /// another CTA wrote or read. Entries of other launches count as empty.
    #[inline]
    pub fn race_access(&self, o: usize, len: usize, tag: u64, me: u64, write: bool) -> std::result::Result<(), Race> {
        let sh = self.race.get_or_init(|| RaceShadow::new(self.size as usize));
        let (first, last) = (o >> 3, (o + len - 1) >> 3);
        for g in first..=last {
            let lo = if g == first { o & 7 } else { 0 };
            let hi = if g == last { (o + len - 1) & 7 } else { 7 };
            let mask = ((0xffu32 << lo) & (0xffu32 >> (7 - hi))) as u8;
            sh.access(g, mask, tag, me, write)?;
        }
        Ok(())
    }
}

/// A race found by `Allocation::race_access`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Race {
    /// Offset of the byte in the allocation.
    pub offset: usize,
    /// The other CTA's identity (`MULTI`: several CTAs read the byte).
    pub other: u64,
    /// Whether the other CTA wrote the byte (else it read it).
    pub wrote: bool,
}

/// The race shadow of an allocation. Per byte, for the current launch, it holds the CTA that
/// wrote the byte (if any) and the CTA that read it (none, one, or several): a read of a byte
/// another CTA wrote is a race, and so is a write of a byte another CTA wrote or read.
///
/// Mostly one CTA touches a given 8 bytes in a launch, or many CTAs read the same bytes, so the
/// shadow keeps one word per 8-byte granule, `tag << 40 | mode << 38 | cta << 16 | written << 8
/// | read` (`tag`: the launch; `written`, `read`: byte masks), in one of these modes:
/// - `SINGLE`: only CTA `cta` touched the granule in the launch: it wrote the bytes of `written`
///   and read those of `read`;
/// - `SHARED`: no byte of the granule was written in the launch, and each byte of `read` was read
///   by several CTAs (no other byte was read);
/// - `EXPANDED`: anything else; `bytes` then holds the state of each of the granule's bytes,
///   `tag << 40 | writer << 20 | reader` (with its own launch tag), made on first use.
struct RaceShadow {
    granules: Box<[AtomicU64]>,
    bytes: OnceLock<Box<[AtomicU64]>>,
}

const SINGLE: u64 = 0;
const SHARED: u64 = 1;
const EXPANDED: u64 = 2;

impl RaceShadow {
    fn new(size: usize) -> RaceShadow {
        RaceShadow { granules: zeroed_words(size.div_ceil(8)), bytes: OnceLock::new() }
    }

    /// One granule's part of `Allocation::race_access`: the common cases inline, the rest in `slow`.
    #[inline(always)]
    fn access(&self, g: usize, mask: u8, tag: u64, me: u64, write: bool) -> std::result::Result<(), Race> {
        let e = &self.granules[g];
        let v = e.load(Relaxed);
        let bits = if write { (mask as u64) << 8 } else { mask as u64 };
        if v >> 16 == (tag << 24 | SINGLE << 22 | me) {
            // Only this CTA touched the granule so far.
            if v | bits != v {
                e.store(v | bits, Relaxed);
            }
            return Ok(());
        }
        if v >> 40 != tag {
            // Nothing in this launch yet.
            e.store(tag << 40 | SINGLE << 38 | me << 16 | bits, Relaxed);
            return Ok(());
        }
        if !write && (v >> 38) & 3 == SHARED && mask & !(v as u8) == 0 {
            // Bytes several CTAs read, read again.
            return Ok(());
        }
        self.slow(g, v, mask, tag, me, write)
    }

    #[cold]
    #[inline(never)]
    fn slow(&self, g: usize, v: u64, mask: u8, tag: u64, me: u64, write: bool) -> std::result::Result<(), Race> {
        // `v` belongs to this launch and is not `SINGLE` for `me`.
        let (mode, cta, w, r) = ((v >> 38) & 3, (v >> 16) & 0x3f_ffff, (v >> 8) as u8, v as u8);
        let race = |m: u8, other: u64, wrote: bool| Race { offset: g * 8 + m.trailing_zeros() as usize, other, wrote };
        match mode {
            SINGLE => {
                // Another CTA touched the granule.
                let hit = mask & if write { w | r } else { w };
                if hit != 0 {
                    let k = hit.trailing_zeros();
                    return Err(race(hit, cta, (w >> k) & 1 != 0));
                }
                if !write && w == 0 && mask == r {
                    self.granules[g].store(tag << 40 | SHARED << 38 | r as u64, Relaxed);
                    return Ok(());
                }
            }
            SHARED if write && mask & r != 0 => return Err(race(mask & r, MULTI, false)),
            _ => {}
        }
        // Byte by byte: the granule's state spelled out per byte first, unless it already is.
        let bytes = self.bytes.get_or_init(|| zeroed_words(self.granules.len() * 8));
        let bytes = &bytes[g * 8..g * 8 + 8];
        if mode != EXPANDED {
            for (k, b) in bytes.iter().enumerate() {
                let has = |m: u8| (m >> k) & 1 != 0;
                let (bw, br) = match mode {
                    SINGLE => (if has(w) { cta } else { 0 }, if has(r) { cta } else { 0 }),
                    _ => (0, if has(r) { MULTI } else { 0 }),
                };
                b.store(tag << 40 | bw << 20 | br, Relaxed);
            }
            self.granules[g].store(tag << 40 | EXPANDED << 38, Relaxed);
        }
        for (k, b) in bytes.iter().enumerate() {
            if (mask >> k) & 1 == 0 {
                continue;
            }
            let v = b.load(Relaxed);
            let (bw, br) = if v >> 40 == tag { ((v >> 20) & MULTI, v & MULTI) } else { (0, 0) };
            let offset = g * 8 + k;
            if bw != 0 && bw != me {
                return Err(Race { offset, other: bw, wrote: true });
            }
            if write {
                if br != 0 && br != me {
                    return Err(Race { offset, other: br, wrote: false });
                }
                b.store(tag << 40 | me << 20 | br, Relaxed);
            } else {
                let br = if br == 0 || br == me { me } else { MULTI };
                b.store(tag << 40 | bw << 20 | br, Relaxed);
            }
        }
        Ok(())
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
        Memory {
            live: RwLock::new(Vec::new()),
            freed: Mutex::new(Vec::new()),
            next: Mutex::new(GLOBAL_BASE),
            total,
            used: Mutex::new(0),
        }
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
            let what = if lock(&self.freed).iter().any(|f| f.base == ptr) {
                "already freed"
            } else {
                "not the start of an allocation"
            };
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
        self.find(addr, len)
            .ok_or_else(|| SimError::invalid(format!("{what}: [0x{addr:x}, +{len}) {}", self.describe(addr))))
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
        return format!(
            "is in freed memory (a {}-byte allocation at 0x{:x}, offset {}): use after free",
            f.size,
            f.base,
            addr - f.base
        );
    }
    let i = live.partition_point(|x| x.base <= addr);
    if i > 0 {
        let a = &live[i - 1];
        if addr < a.end() {
            return format!(
                "is inside the {}-byte allocation at 0x{:x} (offset {}) but runs past its end",
                a.size,
                a.base,
                addr - a.base
            );
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The race rules byte by byte, for comparison: (writer, reader) per byte for one launch.
    struct Model {
        tag: u64,
        bytes: Vec<(u64, u64, u64)>,
    }

    impl Model {
        fn access(&mut self, o: usize, len: usize, tag: u64, me: u64, write: bool) -> std::result::Result<(), Race> {
            self.tag = tag;
            for offset in o..o + len {
                let (t, w, r) = self.bytes[offset];
                let (w, r) = if t == self.tag { (w, r) } else { (0, 0) };
                if w != 0 && w != me {
                    return Err(Race { offset, other: w, wrote: true });
                }
                if write && r != 0 && r != me {
                    return Err(Race { offset, other: r, wrote: false });
                }
                self.bytes[offset] =
                    if write { (tag, me, r) } else { (tag, w, if r == 0 || r == me { me } else { MULTI }) };
            }
            Ok(())
        }
    }

    #[test]
    fn adjacent_bytes_of_two_ctas_are_no_race() {
        let a = Allocation::new(GLOBAL_BASE, 64);
        a.race_access(0, 2, 5, 1, true).unwrap();
        a.race_access(2, 2, 5, 2, true).unwrap();
        a.race_access(4, 4, 5, 3, false).unwrap();
        assert_eq!(a.race_access(0, 4, 5, 3, false), Err(Race { offset: 0, other: 1, wrote: true }));
        // Another launch starts afresh.
        a.race_access(0, 8, 6, 3, true).unwrap();
        assert_eq!(a.race_access(3, 1, 6, 1, false), Err(Race { offset: 3, other: 3, wrote: true }));
    }

    #[test]
    fn bytes_many_ctas_read_may_not_be_written() {
        let a = Allocation::new(GLOBAL_BASE, 64);
        for cta in 1..5 {
            a.race_access(16, 16, 9, cta, false).unwrap();
        }
        a.race_access(20, 4, 9, 7, false).unwrap();
        assert_eq!(a.race_access(24, 4, 9, 2, true), Err(Race { offset: 24, other: MULTI, wrote: false }));
        a.race_access(32, 4, 9, 2, true).unwrap();
    }

    /// Random accesses of random CTAs and launches agree with the byte-by-byte rules.
    #[test]
    fn granules_agree_with_the_byte_rules() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for round in 0..300 {
            let a = Allocation::new(GLOBAL_BASE, 48);
            let mut model = Model { tag: 0, bytes: vec![(0, 0, 0); 48] };
            let mut tag = 1 + round % 3;
            for _ in 0..40 {
                if rand(10) == 0 {
                    tag += 1;
                }
                let len = 1usize << rand(5);
                let o = rand((48 / len) as u64) as usize * len;
                let (me, write) = (1 + rand(3), rand(3) == 0);
                let want = model.access(o, len, tag, me, write);
                let got = a.race_access(o, len, tag, me, write);
                assert_eq!(got, want, "access [{o}, +{len}) by {me}, write {write}, launch {tag}");
                if want.is_err() {
                    break;
                }
            }
        }
    }
}

//! The process's memory: mimalloc as the allocator, told to hand freed memory back promptly, and
//! SQLite's own memory (its page caches, statements and rows) allocated through it instead of
//! glibc's `malloc`.
//!
//! Why SQLite: the bundled SQLite calls the C library's `malloc`, and sqlx runs every connection
//! on its own thread, so glibc gave each of the pool's eight threads an arena of its own. The page
//! cache is one LRU shared by all connections (see the store's pragmas), so a page freed on one
//! thread went back to another thread's arena, and each arena grew towards the whole cache: under
//! bench/errors.sh glibc's arenas held 61 MB for a cache budgeted at 24 MiB (measured from
//! /proc/PID/smaps at the peak).
//!
//! Why the purge delay: mimalloc 3 keeps freed pages for a second before giving them back
//! (`purge_delay`, 1,000 ms), and under ingest the memory freed in that second is most of the
//! process: the peak RSS of bench/errors.sh was 150 MB with the default, 105 MB with 100 ms and
//! 87 MB with 5 ms, for the same live heap (34 MB at the peak, measured with heaptrack).
//!
//! This is the one place the binary uses `unsafe`: SQLite takes its allocator as C function
//! pointers (`sqlite3_config(SQLITE_CONFIG_MALLOC, …)`) and mimalloc its options by number,
//! which no safe wrapper exposes.
#![allow(unsafe_code)]

use std::alloc::{alloc, dealloc, realloc, Layout};
use std::os::raw::{c_int, c_void};

use libsqlite3_sys as ffi;

/// mimalloc instead of glibc's allocator: ingest allocates and frees many small strings on
/// several threads at once, where glibc's arenas spent a fifth of the CPU (measured with perf
/// under bench/apm.sh) and held on to freed memory.
///
/// Built with `no_thp`: mimalloc otherwise asks for transparent huge pages on its arena, and
/// every touched 4 KB then costs a 2 MB page (idle RSS 51 MB with them, 32 MB without).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

unsafe extern "C" {
    /// mimalloc's option setter; options are numbered by the `mi_option_e` enum of the
    /// mimalloc.h the library was built with (build.rs reads the number from it).
    fn mi_option_set(option: c_int, value: std::os::raw::c_long);
}

/// `mi_option_purge_delay`'s number, found by build.rs in the header mimalloc was built from.
const PURGE_DELAY_OPTION: &str = env!("LOOKOUT_MI_PURGE_DELAY_OPTION");

/// Milliseconds freed memory waits before it goes back to the system: 10, mimalloc 2's default
/// (5 ms gave the lowest peak, 87 MB; 10 keeps the madvise calls rarer for much the same).
const PURGE_DELAY_MS: std::os::raw::c_long = 10;

/// Tells mimalloc to give freed memory back after [`PURGE_DELAY_MS`], unless the environment
/// sets `MIMALLOC_PURGE_DELAY` (an operator's choice wins).
pub fn return_freed_memory_promptly() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    let Ok(option) = PURGE_DELAY_OPTION.parse::<c_int>() else {
        return;
    };
    // SAFETY: `option` is mi_option_purge_delay's number in the header of the mimalloc linked
    // in (checked at build time); setting an option is a plain store. It runs first in main,
    // before other threads exist (mimalloc documents mi_option_set as not thread safe).
    unsafe { mi_option_set(option, PURGE_DELAY_MS) };
}

/// Bytes in front of each allocation recording its size (SQLite asks for sizes back), and the
/// alignment SQLite's own allocator gives (8 would do; 16 suits any type).
const HEADER: usize = 16;

fn layout(size: usize) -> Option<Layout> {
    Layout::from_size_align(size.checked_add(HEADER)?, HEADER).ok()
}

/// Allocations SQLite made through [`x_malloc`], counted in tests only.
#[cfg(test)]
static SQLITE_ALLOCATIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

unsafe extern "C" fn x_malloc(n: c_int) -> *mut c_void {
    #[cfg(test)]
    SQLITE_ALLOCATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let Some(l) = usize::try_from(n).ok().and_then(layout) else {
        return std::ptr::null_mut();
    };
    // SAFETY: `l` has a non-zero size (at least HEADER). The size is written in the header,
    // inside the block just allocated, and the pointer handed out is past it.
    unsafe {
        let base = alloc(l);
        if base.is_null() {
            return std::ptr::null_mut();
        }
        base.cast::<usize>().write(l.size() - HEADER);
        base.add(HEADER).cast()
    }
}

/// The base of a block `x_malloc` or `x_realloc` returned, and its layout.
///
/// # Safety
/// `p` must be non-null and come from `x_malloc`/`x_realloc`, not yet freed.
unsafe fn block(p: *mut c_void) -> (*mut u8, Layout) {
    // SAFETY: by the caller's contract the header precedes `p` and holds the size the block was
    // allocated with, which made a valid layout then.
    unsafe {
        let base = p.cast::<u8>().sub(HEADER);
        let size = base.cast::<usize>().read();
        (
            base,
            Layout::from_size_align_unchecked(size + HEADER, HEADER),
        )
    }
}

unsafe extern "C" fn x_free(p: *mut c_void) {
    if p.is_null() {
        return;
    }
    // SAFETY: SQLite frees only what its xMalloc/xRealloc returned, once.
    unsafe {
        let (base, l) = block(p);
        dealloc(base, l);
    }
}

unsafe extern "C" fn x_realloc(p: *mut c_void, n: c_int) -> *mut c_void {
    if p.is_null() {
        // SAFETY: same as a fresh allocation.
        return unsafe { x_malloc(n) };
    }
    let Some(new) = usize::try_from(n).ok().and_then(layout) else {
        return std::ptr::null_mut();
    };
    // SAFETY: `p` is a live block of ours (SQLite's contract); the new size is non-zero and
    // valid for the same alignment; the header of the moved block is rewritten.
    unsafe {
        let (base, old) = block(p);
        let moved = realloc(base, old, new.size());
        if moved.is_null() {
            return std::ptr::null_mut();
        }
        moved.cast::<usize>().write(new.size() - HEADER);
        moved.add(HEADER).cast()
    }
}

unsafe extern "C" fn x_size(p: *mut c_void) -> c_int {
    if p.is_null() {
        return 0;
    }
    // SAFETY: SQLite asks sizes of live blocks it allocated through these functions.
    let size = unsafe { block(p).1.size() - HEADER };
    c_int::try_from(size).unwrap_or(c_int::MAX)
}

unsafe extern "C" fn x_roundup(n: c_int) -> c_int {
    // SQLite's own allocator rounds to 8 bytes; sizes are then what x_size gives back.
    n.checked_add(7).map_or(n, |v| v & !7)
}

unsafe extern "C" fn x_init(_: *mut c_void) -> c_int {
    ffi::SQLITE_OK
}

unsafe extern "C" fn x_shutdown(_: *mut c_void) {}

/// Hands SQLite the process's allocator. Must run before the first connection opens (SQLite
/// refuses to change allocators once initialised, and says so: `false` then, and SQLite keeps
/// using `malloc`, which is correct, only larger).
pub fn sqlite_uses_process_allocator() -> bool {
    let methods = ffi::sqlite3_mem_methods {
        xMalloc: Some(x_malloc),
        xFree: Some(x_free),
        xRealloc: Some(x_realloc),
        xSize: Some(x_size),
        xRoundup: Some(x_roundup),
        xInit: Some(x_init),
        xShutdown: Some(x_shutdown),
        pAppData: std::ptr::null_mut(),
    };
    // SAFETY: SQLITE_CONFIG_MALLOC takes a pointer to a sqlite3_mem_methods and copies it before
    // returning; the functions it names are valid for the life of the process.
    let rc = unsafe {
        ffi::sqlite3_config(
            ffi::SQLITE_CONFIG_MALLOC,
            &methods as *const ffi::sqlite3_mem_methods,
        )
    };
    rc == ffi::SQLITE_OK
}

#[cfg(test)]
mod tests {
    #[test]
    fn sqlite_runs_on_the_process_allocator() {
        // Before any connection in this test binary: SQLite accepts the allocator. (No other
        // test here opens a database; one that did first would make this fail.)
        assert!(super::sqlite_uses_process_allocator());
        let before = super::SQLITE_ALLOCATIONS.load(std::sync::atomic::Ordering::Relaxed);
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            use sqlx::{Connection, Row};
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
            let mut c = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query("CREATE TABLE t (v TEXT)")
                .execute(&mut c)
                .await
                .unwrap();
            // Rows large enough to go through realloc and overflow pages.
            for i in 0..200 {
                sqlx::query("INSERT INTO t VALUES ($1)")
                    .bind("x".repeat(i * 97))
                    .execute(&mut c)
                    .await
                    .unwrap();
            }
            let r = sqlx::query("SELECT SUM(LENGTH(v)) AS n, COUNT(*) AS c FROM t")
                .fetch_one(&mut c)
                .await
                .unwrap();
            let n: i64 = r.try_get("n").unwrap();
            assert_eq!(n, (0..200).map(|i| i * 97).sum::<i64>());
        });
        let after = super::SQLITE_ALLOCATIONS.load(std::sync::atomic::Ordering::Relaxed);
        assert!(
            after > before + 200,
            "SQLite allocated through malloc instead"
        );
    }
}

//! Finds the number of mimalloc's `purge_delay` option in the header of the mimalloc being
//! linked (libmimalloc-sys exports its include directory), so the binary sets that option and
//! not whatever another version numbers the same (the numbering differs between mimalloc 2
//! and 3). See src/allocator.rs.

use std::path::Path;

fn main() {
    let dir = std::env::var("DEP_MIMALLOC_INCLUDE_DIR")
        .expect("libmimalloc-sys exports its include directory");
    let header = Path::new(&dir).join("mimalloc.h");
    println!("cargo:rerun-if-changed={}", header.display());
    let text = std::fs::read_to_string(&header).expect("mimalloc.h");
    let index = option_index(&text, "mi_option_purge_delay")
        .expect("mimalloc.h numbers mi_option_purge_delay in enum mi_option_e");
    println!("cargo:rustc-env=LOOKOUT_MI_PURGE_DELAY_OPTION={index}");
}

/// The position of `name` among the members of `enum mi_option_e` before `_mi_option_last`
/// (the members are numbered from 0, one per line, comments aside).
fn option_index(header: &str, name: &str) -> Option<usize> {
    let start = header.find("typedef enum mi_option_e {")?;
    let body = header.get(start..)?.lines().skip(1);
    let mut index = 0;
    for line in body {
        let code = line.split("//").next().unwrap_or("").trim();
        if code.starts_with("_mi_option_last") {
            return None;
        }
        let Some(member) = code.strip_suffix(',') else {
            continue;
        };
        if member.contains('=') {
            return None;
        }
        if member.trim() == name {
            return Some(index);
        }
        index += 1;
    }
    None
}

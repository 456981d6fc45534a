//! Quantities as people read them: byte sizes in binary units.

/// `512 B`, `3.2 KiB`, `14.0 MiB`, `1.5 GiB`.
pub fn bytes(n: u64) -> String {
    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    match n {
        n if n >= GIB => format!("{:.1} GiB", n as f64 / GIB as f64),
        n if n >= MIB => format!("{:.1} MiB", n as f64 / MIB as f64),
        n if n >= KIB => format!("{:.1} KiB", n as f64 / KIB as f64),
        n => format!("{n} B"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(super::bytes(512), "512 B");
        assert_eq!(super::bytes(3 * 1024 + 205), "3.2 KiB");
        assert_eq!(super::bytes(14 << 20), "14.0 MiB");
        assert_eq!(super::bytes(3 << 29), "1.5 GiB");
    }
}

//! The process's peak resident memory (Linux `/proc`), for `bench-train` and the passkey
//! stage's generation measurements. Elsewhere the readings are `None`, never an error.

/// Resets the kernel's resident-set high-water mark of this process (`clear_refs` 5); whether
/// it could.
pub(crate) fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The high-water mark (`VmHWM`) in MiB.
pub(crate) fn peak_rss_mib() -> Option<f64> {
    status_mib("VmHWM")
}

/// A `kB` field of `/proc/self/status`, in MiB.
fn status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

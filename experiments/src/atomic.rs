//! Atomic file writes: the bytes go to a temporary file in the destination's
//! directory, which is then renamed over the destination. A reader sees the old
//! file or the complete new one, never a partial one, and a failed write leaves
//! nothing behind.

pub use fourf_nn::weights::{remove_temporaries, write_atomic};

use std::path::Path;

use anyhow::{bail, Context};

/// Checks, before any work, that `path` (given as option `flag`) can be written
/// as an output: its directory exists and takes new files, it is not a directory
/// or a read-only file, and it is not one of `inputs` (which the write would
/// replace).
pub fn check_output(flag: &str, path: &Path, inputs: &[&Path]) -> anyhow::Result<()> {
    let shown = path.display();
    if path.file_name().is_none() {
        bail!("{flag} {shown}: give a file name");
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        bail!(
            "{flag} {shown}: directory {} does not exist; create it first",
            dir.display()
        );
    }
    if path.is_dir() {
        bail!("{flag} {shown}: is a directory; give a file name");
    }
    if let Ok(out) = std::fs::canonicalize(path) {
        for input in inputs {
            if std::fs::canonicalize(input).is_ok_and(|i| i == out) {
                bail!(
                    "{flag} {shown} is the input {}; writing it would replace the input: give another path",
                    input.display()
                );
            }
        }
        let meta = std::fs::metadata(&out).with_context(|| format!("{flag} {shown}"))?;
        if meta.is_file() && meta.permissions().readonly() {
            bail!("{flag} {shown}: is read-only; fourf does not replace it");
        }
    }
    // The one sure test of "takes new files", for root and ACLs alike.
    let probe = dir.join(format!(".fourf-probe-{}", std::process::id()));
    std::fs::File::create(&probe)
        .with_context(|| format!("{flag} {shown}: cannot create files in {}", dir.display()))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn writes_and_replaces_without_leftovers() {
        let dir = crate::test_dir("atomic");
        let p = dir.join("a.bin");
        write_atomic(&p, b"first").unwrap();
        write_atomic(&p, b"second").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"second");
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
    }

    #[test]
    fn outputs_are_checked_before_the_work() {
        let dir = crate::test_dir("check-output");
        let input = dir.join("in.npy");
        fs::write(&input, b"x").unwrap();
        let e = |p: &std::path::Path| check_output("--out", p, &[&input]).unwrap_err().to_string();
        assert!(e(&dir.join("no/y.npy")).contains("does not exist"));
        assert!(e(&input).contains("is the input"));
        assert!(e(&dir.join(".").join("in.npy")).contains("is the input"));
        assert!(e(&dir).contains("is a directory"));
        check_output("--out", &dir.join("y.npy"), &[&input]).unwrap();
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1, "the probe is removed");
    }

    #[test]
    fn missing_directory_is_an_error_and_leaves_nothing() {
        let dir = crate::test_dir("atomic-missing");
        let p = dir.join("no").join("a.bin");
        assert!(write_atomic(&p, b"x").is_err());
        assert!(!p.exists());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
    }
}

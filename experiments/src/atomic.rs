//! Atomic file writes: the bytes go to a temporary file in the destination's
//! directory, which is then renamed over the destination. A reader sees the old
//! file or the complete new one, never a partial one, and a failed write leaves
//! nothing behind.

pub use fourf_nn::weights::write_atomic;

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
    fn missing_directory_is_an_error_and_leaves_nothing() {
        let dir = crate::test_dir("atomic-missing");
        let p = dir.join("no").join("a.bin");
        assert!(write_atomic(&p, b"x").is_err());
        assert!(!p.exists());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
    }
}

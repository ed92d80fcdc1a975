//! Reading input files with a size limit: a config file, a table or a stream
//! given by mistake (`/dev/zero`, a FIFO) is an error after a bounded read, never
//! a read until memory runs out.

use std::io::{self, Read};
use std::path::Path;

/// The most bytes a config file (model, machine, experiment, training, layer
/// table, level table) may have: 16 MiB.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// The text of the file at `path`, at most `max` bytes: a larger file, a device
/// or an endless stream is an error (`InvalidData`) after reading `max + 1` bytes.
pub fn read_text_limited(path: impl AsRef<Path>, max: u64) -> io::Result<String> {
    let mut bytes = Vec::new();
    std::fs::File::open(path.as_ref())?
        .take(max + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {max} bytes; at most that many are read"),
        ));
    }
    String::from_utf8(bytes).map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_small_files_and_stops_at_the_limit() {
        let p = std::env::temp_dir().join(format!("fourf-files-{}.txt", std::process::id()));
        std::fs::write(&p, "abc").unwrap();
        assert_eq!(read_text_limited(&p, 3).unwrap(), "abc");
        assert_eq!(read_text_limited(&p, 2).unwrap_err().kind(), io::ErrorKind::InvalidData);
        std::fs::write(&p, [0xff, 0xfe]).unwrap();
        assert!(read_text_limited(&p, 10).unwrap_err().to_string().contains("UTF-8"));
        let _ = std::fs::remove_file(&p);
        if Path::new("/dev/zero").exists() {
            let e = read_text_limited(Path::new("/dev/zero"), 1 << 10).unwrap_err();
            assert!(e.to_string().contains("at most"), "{e}");
        }
    }
}

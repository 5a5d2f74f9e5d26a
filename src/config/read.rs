//! Reading the files a config names (`--config` itself, `secret_file`, `key_file`, `ca_file`):
//! regular files only, size-capped, never opened blocking.
//!
//! `--config /dev/zero` once grew the process to 9.8 GB, and a FIFO in any of these places hung
//! `--check`, start and reload for ever. So each file is opened with `O_NONBLOCK` (opening a
//! FIFO then returns at once instead of waiting for a writer), checked with `fstat` on the open
//! descriptor (no race with a rename in between), refused unless it is a regular file, and read
//! up to its cap plus one byte, so a file that grows while being read is still refused.

use std::fmt;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Largest config or CA bundle file read (10 MiB): a real one is a few KiB.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
/// Largest secret file read (64 KiB): an app secret is 43 characters, a client key 64.
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// Why a file was not read. Its `Display` says what it is and never holds file contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    NotFound,
    /// A FIFO, device, directory or socket: what it is.
    NotRegular(&'static str),
    /// Bigger than the cap (bytes).
    TooLarge(u64),
    Io(std::io::ErrorKind),
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::NotFound => f.write_str("no such file"),
            ReadError::NotRegular(what) => write!(f, "{what}, not a regular file"),
            ReadError::TooLarge(cap) => write!(f, "larger than {}", human(*cap)),
            ReadError::Io(kind) => write!(f, "{kind}"),
        }
    }
}

fn human(bytes: u64) -> String {
    if bytes >= 1024 * 1024 && bytes % (1024 * 1024) == 0 {
        format!("{} MiB", bytes / (1024 * 1024))
    } else if bytes >= 1024 && bytes % 1024 == 0 {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

/// The contents of the regular file at `path`, at most `cap` bytes.
pub fn read_capped(path: &Path, cap: u64) -> Result<Vec<u8>, ReadError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => ReadError::NotFound,
            // Opening a socket file fails with ENXIO.
            _ if e.raw_os_error() == Some(libc::ENXIO) => ReadError::NotRegular("a socket"),
            kind => ReadError::Io(kind),
        })?;
    let meta = file.metadata().map_err(|e| ReadError::Io(e.kind()))?;
    let ft = meta.file_type();
    if !ft.is_file() {
        return Err(ReadError::NotRegular(if ft.is_dir() {
            "a directory"
        } else if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_char_device() || ft.is_block_device() {
            "a device"
        } else if ft.is_socket() {
            "a socket"
        } else {
            "not a file"
        }));
    }
    if meta.len() > cap {
        return Err(ReadError::TooLarge(cap));
    }
    read_at_most(file, cap)
}

fn read_at_most(file: File, cap: u64) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    file.take(cap + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ReadError::Io(e.kind()))?;
    if bytes.len() as u64 > cap {
        return Err(ReadError::TooLarge(cap));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_read_up_to_their_cap() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"12345").unwrap();
        assert_eq!(read_capped(&p, 5).unwrap(), b"12345");
        assert_eq!(read_capped(&p, 4), Err(ReadError::TooLarge(4)));
        assert_eq!(
            read_capped(&dir.path().join("none"), 5),
            Err(ReadError::NotFound)
        );
    }

    #[test]
    fn fifos_devices_and_directories_are_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a file.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert_eq!(read_capped(&fifo, 10), Err(ReadError::NotRegular("a FIFO")));
        assert_eq!(
            read_capped(Path::new("/dev/zero"), 10),
            Err(ReadError::NotRegular("a device"))
        );
        assert_eq!(
            read_capped(dir.path(), 10),
            Err(ReadError::NotRegular("a directory"))
        );
        assert_eq!(
            ReadError::TooLarge(MAX_FILE_BYTES).to_string(),
            "larger than 10 MiB"
        );
        assert_eq!(
            ReadError::TooLarge(MAX_SECRET_BYTES).to_string(),
            "larger than 64 KiB"
        );
    }
}

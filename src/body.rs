//! Request bodies on their way upstream: small ones in memory, uploads spooled to a temporary
//! file so a 20 MB `media/upload` never sits in memory whole and can still be sent again after
//! a token refresh.

use std::io::SeekFrom;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// Size of the pieces a spooled body is written and sent in.
pub const SPOOL_CHUNK: usize = 64 * 1024;

/// A request body as it will be sent to the upstream (possibly more than once).
pub enum RequestBody {
    Empty,
    Buffered(Bytes),
    Spooled(Spool),
}

impl RequestBody {
    pub fn len(&self) -> u64 {
        match self {
            RequestBody::Empty => 0,
            RequestBody::Buffered(b) => b.len() as u64,
            RequestBody::Spooled(s) => s.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A body written to an anonymous temporary file (deleted when dropped).
pub struct Spool {
    file: tempfile::NamedTempFile,
    writer: tokio::fs::File,
    len: u64,
}

impl Spool {
    pub fn new() -> std::io::Result<Self> {
        let file = tempfile::NamedTempFile::new()?;
        let writer = tokio::fs::File::from_std(file.reopen()?);
        Ok(Spool {
            file,
            writer,
            len: 0,
        })
    }

    /// Appends a chunk.
    pub async fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        self.writer.write_all(data).await?;
        self.len += data.len() as u64;
        Ok(())
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Makes everything written visible to readers; call once after the last `write`.
    pub async fn finish(&mut self) -> std::io::Result<()> {
        self.writer.flush().await
    }

    /// A reader from the start, independent of other readers.
    pub async fn reader(&self) -> std::io::Result<SpoolReader> {
        let mut file = tokio::fs::File::from_std(self.file.reopen()?);
        file.seek(SeekFrom::Start(0)).await?;
        Ok(SpoolReader {
            file,
            left: self.len,
        })
    }
}

/// Reads a spooled body from its start.
pub struct SpoolReader {
    file: tokio::fs::File,
    left: u64,
}

impl SpoolReader {
    pub async fn next_chunk(&mut self, max: usize) -> std::io::Result<Option<Bytes>> {
        if self.left == 0 {
            return Ok(None);
        }
        let want = max.min(self.left as usize);
        let mut buf = BytesMut::zeroed(want);
        let mut filled = 0;
        while filled < want {
            let n = self.file.read(&mut buf[filled..]).await?;
            if n == 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "spool file shorter than written",
                ));
            }
            filled += n;
        }
        self.left -= want as u64;
        Ok(Some(buf.freeze()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn spool_round_trip_twice() {
        let mut s = Spool::new().unwrap();
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for part in data.chunks(70_000) {
            s.write(part).await.unwrap();
        }
        s.finish().await.unwrap();
        assert_eq!(s.len(), data.len() as u64);
        for _ in 0..2 {
            let mut r = s.reader().await.unwrap();
            let mut back = Vec::new();
            while let Some(c) = r.next_chunk(SPOOL_CHUNK).await.unwrap() {
                assert!(c.len() <= SPOOL_CHUNK);
                back.extend_from_slice(&c);
            }
            assert_eq!(back, data);
        }
    }
}

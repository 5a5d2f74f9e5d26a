use super::*;
use crate::upstream::h1::wire::tests::{wire, Script, Step};
use proptest::prelude::*;

/// Reads the whole body: its bytes, or the error it ended with.
async fn read_all(body: &mut Body, w: &mut Wire<Script>) -> Result<Vec<u8>, AttemptError> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next(w).await? {
        assert!(!chunk.is_empty(), "no empty pieces");
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Reads a body framed by `framing` from `script`: its bytes and what is left unread.
async fn body_of(
    framing: Framing,
    script: Script,
) -> (Result<Vec<u8>, AttemptError>, Body, Vec<u8>) {
    let mut w = wire(script);
    let mut body = Body::new(framing);
    let read = read_all(&mut body, &mut w).await;
    (read, body, w.unread().to_vec())
}

#[tokio::test]
async fn a_length_body_is_read_to_its_length_whatever_the_reads() {
    let (read, body, left) = body_of(Framing::Length(5), Script::pieces(&[b"hello"])).await;
    assert_eq!(read.unwrap(), b"hello");
    assert!(body.is_complete());
    assert!(left.is_empty());

    let (read, body, _) = body_of(Framing::Length(5), Script::bytewise(b"hello")).await;
    assert_eq!(read.unwrap(), b"hello");
    assert!(body.is_complete());

    // What follows the body is not part of it.
    let (read, body, left) = body_of(Framing::Length(5), Script::pieces(&[b"hello!!"])).await;
    assert_eq!(read.unwrap(), b"hello");
    assert!(body.is_complete());
    assert_eq!(left, b"!!");

    let (read, body, _) = body_of(Framing::Length(0), Script::pieces(&[b"x"])).await;
    assert_eq!(read.unwrap(), b"");
    assert!(body.is_complete(), "nothing to read");
}

#[tokio::test]
async fn a_length_body_cut_short_is_an_error_never_a_short_body() {
    let (read, body, _) = body_of(Framing::Length(10), Script::pieces(&[b"hello"])).await;
    assert_eq!(read, Err(AttemptError::Reset("ConnectionClosed")));
    assert!(!body.is_complete());

    let mut w = wire(Script::reads([Step::Data(b"he".to_vec()), Step::Fail]));
    let mut body = Body::new(Framing::Length(5));
    assert_eq!(body.next(&mut w).await.unwrap().unwrap().as_ref(), b"he");
    assert_eq!(
        body.next(&mut w).await,
        Err(AttemptError::Reset("ReadError"))
    );
    assert_eq!(body.next(&mut w).await, Ok(None), "ended by the error");
    assert!(!body.is_complete());
}

#[tokio::test]
async fn a_body_to_the_end_of_the_connection_ends_with_it() {
    let (read, body, _) = body_of(Framing::UntilClose, Script::pieces(&[b"ab", b"cd", b"e"])).await;
    assert_eq!(read.unwrap(), b"abcde");
    assert!(body.is_complete());
    let (read, body, _) = body_of(
        Framing::UntilClose,
        Script::reads([Step::Data(b"ab".to_vec()), Step::Fail]),
    )
    .await;
    assert_eq!(read, Err(AttemptError::Reset("ReadError")));
    assert!(!body.is_complete());
}

#[tokio::test]
async fn a_chunked_body_is_its_chunks_data() {
    let wire_bytes = b"5\r\nhello\r\n1;ext=1\r\n \r\nA\r\n0123456789\r\n0\r\n\r\n";
    let (read, body, left) = body_of(Framing::Chunked, Script::pieces(&[wire_bytes])).await;
    assert_eq!(read.unwrap(), b"hello 0123456789");
    assert!(body.is_complete());
    assert!(left.is_empty());
    // One byte per read: every state waits for more at every point.
    let (read, body, left) = body_of(Framing::Chunked, Script::bytewise(wire_bytes)).await;
    assert_eq!(read.unwrap(), b"hello 0123456789");
    assert!(body.is_complete());
    assert!(left.is_empty());
}

#[tokio::test]
async fn trailers_are_read_and_dropped_and_what_follows_stays_unread() {
    let wire_bytes = b"3\r\nabc\r\n0\r\nX-T: 1\r\nX-U: 2\r\n\r\nHTTP/1.1";
    let (read, body, left) = body_of(Framing::Chunked, Script::pieces(&[wire_bytes])).await;
    assert_eq!(read.unwrap(), b"abc");
    assert!(body.is_complete());
    assert_eq!(left, b"HTTP/1.1");
    let (read, body, left) = body_of(Framing::Chunked, Script::bytewise(wire_bytes)).await;
    assert_eq!(read.unwrap(), b"abc");
    assert!(body.is_complete());
    assert!(
        left.is_empty(),
        "one byte a read: nothing read past the end"
    );
}

async fn chunked_error(bytes: &[u8]) -> AttemptError {
    let (read, body, _) = body_of(Framing::Chunked, Script::pieces(&[bytes])).await;
    assert!(!body.is_complete());
    read.expect_err("an error")
}

#[tokio::test]
async fn broken_chunking_is_an_error() {
    let bad_chunk = AttemptError::Reset("InvalidChunk");
    let bad_trailers = AttemptError::Reset("InvalidTrailerEnd");
    let closed = AttemptError::Reset("ConnectionClosed");
    assert_eq!(chunked_error(b"zz\r\nhello\r\n").await, bad_chunk);
    assert_eq!(chunked_error(b"5\r\nhelloXY0\r\n\r\n").await, bad_chunk);
    assert_eq!(chunked_error(b"5\r\nhello\rX0\r\n\r\n").await, bad_chunk);
    assert_eq!(chunked_error(b"5\r\nhello\n0\r\n\r\n").await, bad_chunk);
    assert_eq!(
        chunked_error(b"0\r\nX-T: 1\nmore\r\n\r\n").await,
        bad_trailers
    );
    assert_eq!(chunked_error(b"0\r\nX-T: 1\rX\r\n\r\n").await, bad_trailers);
    assert_eq!(chunked_error(b"0\r\n\n").await, bad_trailers);
    // The connection ends: in a size line, in data, before a chunk's CRLF, in trailers.
    for cut in [
        &b"5"[..],
        b"5\r\nhel",
        b"5\r\nhello",
        b"5\r\nhello\r",
        b"0\r\n",
        b"0\r\nX-T",
    ] {
        assert_eq!(chunked_error(cut).await, closed, "{cut:?}");
    }
}

#[tokio::test]
async fn chunk_lines_and_trailers_have_limits() {
    // A size line (extensions included) longer than the limit and not ended.
    let mut line = b"5;".to_vec();
    line.resize(MAX_CHUNK_LINE + 1, b'x');
    assert_eq!(
        chunked_error(&line).await,
        AttemptError::Reset("InvalidChunk")
    );
    // At the limit it is still waited for.
    line.truncate(MAX_CHUNK_LINE);
    let mut ok = line.clone();
    ok.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    let (read, _, _) = body_of(
        Framing::Chunked,
        Script::pieces(&[&line, &ok[line.len()..]]),
    )
    .await;
    assert_eq!(read.unwrap(), b"hello");

    // Trailers: up to the limit in all, over several lines.
    let trailers = |total: usize| {
        let mut t = b"0\r\n".to_vec();
        let mut n = 0;
        while n < total {
            let len = (total - n).min(1000);
            t.extend(std::iter::repeat_n(b'a', len));
            t.extend_from_slice(b"\r\n");
            n += len;
        }
        t.extend_from_slice(b"\r\n");
        t
    };
    let (read, body, _) =
        body_of(Framing::Chunked, Script::pieces(&[&trailers(MAX_TRAILERS)])).await;
    assert_eq!(read.unwrap(), b"");
    assert!(body.is_complete());
    assert_eq!(
        chunked_error(&trailers(MAX_TRAILERS + 1)).await,
        AttemptError::Reset("InvalidTrailerEnd")
    );
}

#[tokio::test]
async fn bytes_read_with_the_head_start_the_body() {
    for (framing, first, rest) in [
        (Framing::UntilClose, &b"abc"[..], &b"def"[..]),
        (Framing::Length(6), b"abc", b"def"),
        (Framing::Chunked, b"3\r\nabc\r\n", b"3\r\ndef\r\n0\r\n\r\n"),
    ] {
        let mut w = wire(Script::pieces(&[first, rest]));
        w.fill(16).await.unwrap();
        let mut body = Body::new(framing);
        assert_eq!(
            read_all(&mut body, &mut w).await.unwrap(),
            b"abcdef",
            "{framing:?}"
        );
        assert!(body.is_complete());
    }
}

#[tokio::test]
async fn one_read_of_a_body_takes_up_to_64_kib_and_limits_are_pingoras() {
    let big = vec![1u8; 70_000];
    let mut w = wire(Script::pieces(&[&big]));
    let mut body = Body::new(Framing::Length(70_000));
    assert_eq!(body.next(&mut w).await.unwrap().unwrap().len(), 64 * 1024);
    assert_eq!((MAX_CHUNK_LINE, MAX_TRAILERS), (8 * 1024, 64 * 1024));
}

#[tokio::test(start_paused = true)]
async fn a_body_read_that_stalls_times_out() {
    let script = Script::reads([Step::Data(b"5\r\nhe".to_vec()), Step::Stall]);
    let mut w = Wire::new(script, Some(std::time::Duration::from_secs(1)), None);
    let mut body = Body::new(Framing::Chunked);
    assert_eq!(body.next(&mut w).await.unwrap().unwrap().as_ref(), b"he");
    assert_eq!(body.next(&mut w).await, Err(AttemptError::Timeout));
    assert!(!body.is_complete());
}

/// `data` chunked into pieces of the sizes in `sizes` (cycled), with a trailer when asked.
fn chunked(data: &[u8], sizes: &[usize], trailer: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].clamp(1, rest.len());
        out.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        out.extend_from_slice(&rest[..n]);
        out.extend_from_slice(b"\r\n");
        rest = &rest[n..];
        i += 1;
    }
    out.extend_from_slice(b"0\r\n");
    if trailer {
        out.extend_from_slice(b"X-Trailer: t\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// `bytes` cut into reads at `cuts` (positions, any order).
fn reads(bytes: &[u8], cuts: &[usize]) -> Script {
    let mut at: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    at.push(0);
    at.push(bytes.len());
    at.sort_unstable();
    at.dedup();
    Script::reads(
        at.windows(2)
            .map(|w| Step::Data(bytes[w[0]..w[1]].to_vec())),
    )
}

proptest! {
    /// Any data, chunked any way and read in any pieces, reads back as itself, whole, with
    /// what follows the body left unread; cut anywhere short of its end, it is an error.
    #[test]
    fn chunked_bodies_read_back_whatever_the_reads(
        data in proptest::collection::vec(any::<u8>(), 0..600),
        sizes in proptest::collection::vec(1usize..300, 1..5),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        trailer in any::<bool>(),
        cut_at in any::<usize>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let mut bytes = chunked(&data, &sizes, trailer);
        let whole = bytes.len();
        bytes.extend_from_slice(b"NEXT");
        let (read, body, left) = rt.block_on(body_of(Framing::Chunked, reads(&bytes, &cuts)));
        prop_assert_eq!(read.unwrap(), data.clone());
        prop_assert!(body.is_complete());
        // The reads may stop at the body's end or go past it; nothing past it is consumed.
        prop_assert!(b"NEXT".starts_with(&left));

        let cut = cut_at % whole;
        let (read, body, _) = rt.block_on(body_of(Framing::Chunked, reads(&bytes[..cut], &cuts)));
        prop_assert!(read.is_err());
        prop_assert!(!body.is_complete());
    }

    /// The same for a Content-Length body.
    #[test]
    fn length_bodies_read_back_whatever_the_reads(
        data in proptest::collection::vec(any::<u8>(), 1..600),
        cuts in proptest::collection::vec(any::<usize>(), 0..8),
        cut_at in any::<usize>(),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let framing = Framing::Length(data.len() as u64);
        let (read, body, _) = rt.block_on(body_of(framing, reads(&data, &cuts)));
        prop_assert_eq!(read.unwrap(), data.clone());
        prop_assert!(body.is_complete());
        let cut = cut_at % data.len();
        let (read, _, _) = rt.block_on(body_of(framing, reads(&data[..cut], &cuts)));
        prop_assert_eq!(read, Err(AttemptError::Reset("ConnectionClosed")));
    }
}

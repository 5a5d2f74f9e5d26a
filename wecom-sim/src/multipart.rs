//! Just enough `multipart/form-data` to find the `media` part of an upload.

/// A part of a multipart body.
#[derive(Debug, PartialEq, Eq)]
pub struct Part<'b> {
    pub filename: Option<String>,
    pub data: &'b [u8],
}

/// The part named `name` of a `multipart/form-data` body whose `Content-Type` is
/// `content_type`, or `None` when the body is not multipart or has no such part.
pub fn find_part<'b>(content_type: &str, body: &'b [u8], name: &str) -> Option<Part<'b>> {
    let boundary = param(content_type, "boundary")?;
    if boundary.is_empty() {
        return None;
    }
    let delim = format!("--{boundary}");
    let next_delim = format!("\r\n--{boundary}");
    // The first delimiter may come without the CRLF before it.
    let mut at = find(body, delim.as_bytes())? + delim.len();
    loop {
        let rest = &body[at..];
        if rest.starts_with(b"--") {
            return None; // the closing delimiter
        }
        let head_start = find(rest, b"\r\n")? + 2;
        let head_len = find(&rest[head_start..], b"\r\n\r\n")?;
        let head = std::str::from_utf8(&rest[head_start..head_start + head_len]).ok()?;
        let data_start = head_start + head_len + 4;
        let data_len = find(&rest[data_start..], next_delim.as_bytes())?;
        let disposition = head
            .split("\r\n")
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case("content-disposition")
                    .then_some(v)
            })
            .unwrap_or("");
        if param(disposition, "name").as_deref() == Some(name) {
            return Some(Part {
                filename: param(disposition, "filename"),
                data: &rest[data_start..data_start + data_len],
            });
        }
        at += data_start + data_len + next_delim.len();
    }
}

/// A `key=value` or `key="value"` parameter of a header value (`a/b; key=value; ...`).
fn param(header: &str, key: &str) -> Option<String> {
    header.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case(key).then(|| {
            let v = v.trim();
            v.strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v)
                .to_string()
        })
    })
}

/// The first position of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    let (&first, tail) = needle.split_first()?;
    let mut from = 0;
    while from + needle.len() <= hay.len() {
        let i = from
            + hay[from..=hay.len() - needle.len()]
                .iter()
                .position(|&b| b == first)?;
        if &hay[i + 1..i + needle.len()] == tail {
            return Some(i);
        }
        from = i + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: &str = "multipart/form-data; boundary=XyZ";

    #[test]
    fn finds_the_named_part() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"other\"; filename=\"media\"\r\n\r\nnope\r\n--XyZ\r\nContent-Disposition: form-data; name=\"media\"; filename=\"a b.txt\"\r\nContent-Type: application/octet-stream\r\n\r\nDATA\r\n\r\nMORE\r\n--XyZ--\r\n";
        assert_eq!(
            find_part(CT, body, "media"),
            Some(Part {
                filename: Some("a b.txt".into()),
                data: b"DATA\r\n\r\nMORE"
            })
        );
        assert_eq!(
            find_part(CT, body, "other").map(|p| p.data),
            Some(&b"nope"[..])
        );
        assert_eq!(find_part(CT, body, "missing"), None);
        assert_eq!(find_part(CT, b"junk", "media"), None);
        assert_eq!(find_part("application/json", body, "media"), None);
        let quoted = "multipart/form-data; boundary=\"XyZ\"; charset=utf-8";
        assert!(find_part(quoted, body, "media").is_some());
    }

    #[test]
    fn finds_bytes() {
        assert_eq!(find(b"abcabd", b"abd"), Some(3));
        assert_eq!(find(b"ab", b"abd"), None);
        assert_eq!(find(b"aaab", b"ab"), Some(2));
        assert_eq!(find(b"xab", b"ab"), Some(1));
        assert_eq!(find(b"", b"a"), None);
    }
}

//! The app-facing Content-Length: the upstream's value is kept only when it says exactly what
//! the sidecar would write.

use super::says;

#[test]
fn a_content_length_is_kept_only_when_written_as_the_sidecar_writes_it() {
    let v = |s: &str| http::HeaderValue::from_str(s).unwrap();
    for (value, len) in [("0", 0), ("7", 7), ("10", 10), ("1234567", 1_234_567)] {
        assert!(says(&v(value), len), "{value}");
        assert_eq!(v(value), http::HeaderValue::from(len), "{value}");
    }
    assert!(says(&v(&usize::MAX.to_string()), usize::MAX));
    for (value, len) in [
        ("07", 7),
        ("+7", 7),
        (" 7", 7),
        ("7 ", 7),
        ("8", 7),
        ("", 0),
        ("70", 7),
    ] {
        assert!(!says(&v(value), len), "{value:?}");
    }
}

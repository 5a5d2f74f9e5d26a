//! The YAML text as a stream of parser events, each with its line: the one place the config
//! code reaches below serde_yaml.
//!
//! serde_yaml keeps no positions in its values. `locate` needs the line of many key paths and
//! `depth` needs to stop a pathological file before serde_yaml recurses into it; both read the
//! events of libyaml (the parser serde_yaml itself runs on, through `unsafe-libyaml`) in one
//! pass. The parser is pulled one event at a time, so a consumer that stops early has paid only
//! for the text up to there.

use std::mem::MaybeUninit;

use unsafe_libyaml as unsafe_sys;

/// One parser event, as much of it as the config code reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A scalar, with its text (lossy UTF-8; empty from [`Events::structure`]).
    Scalar(String),
    /// `*name`: a reference to an anchored node, read as a leaf here.
    Alias,
    SequenceStart,
    SequenceEnd,
    MappingStart,
    MappingEnd,
    /// Start or end of a document (serde_yaml reads the first one only).
    DocumentStart,
    DocumentEnd,
}

/// The events of a text, with their 1-based lines. Ends at the end of the stream or at the
/// first syntax error (serde_yaml reports that one itself, with a better message).
pub struct Events<'a> {
    parser: Box<MaybeUninit<unsafe_sys::yaml_parser_t>>,
    /// The parser reads from this; it must outlive the parser.
    _input: &'a [u8],
    done: bool,
    /// Whether scalars carry their text.
    text: bool,
}

impl<'a> Events<'a> {
    /// Every event, scalars with their text.
    pub fn new(text: &'a str) -> Self {
        Self::with_text(text, true)
    }

    /// Every event, scalars without their text (for walks that only need the shape).
    pub fn structure(text: &'a str) -> Self {
        Self::with_text(text, false)
    }

    fn with_text(text: &'a str, with_text: bool) -> Self {
        let input = text.as_bytes();
        let mut parser = Box::new(MaybeUninit::<unsafe_sys::yaml_parser_t>::uninit());
        // SAFETY: `yaml_parser_initialize` fills the whole struct (it zeroes it first) and only
        // fails on allocation failure, reported through its result. The input slice is kept in
        // `self` for as long as the parser exists, as `yaml_parser_set_input_string` requires.
        let ok = unsafe {
            let p = parser.as_mut_ptr();
            let ok = unsafe_sys::yaml_parser_initialize(p).ok;
            if ok {
                unsafe_sys::yaml_parser_set_input_string(p, input.as_ptr(), input.len() as _);
            }
            ok
        };
        Events {
            parser,
            _input: input,
            done: !ok,
            text: with_text,
        }
    }
}

impl Iterator for Events<'_> {
    type Item = (usize, Event);

    fn next(&mut self) -> Option<(usize, Event)> {
        loop {
            if self.done {
                return None;
            }
            let mut raw = MaybeUninit::<unsafe_sys::yaml_event_t>::uninit();
            // SAFETY: the parser was initialised in `new` and is not used after a failure (we
            // stop) or after the stream end. A successful `yaml_parser_parse` initialises the
            // event; its data is read according to its type, copied out, and the event freed
            // exactly once with `yaml_event_delete`.
            let item = unsafe {
                if !unsafe_sys::yaml_parser_parse(self.parser.as_mut_ptr(), raw.as_mut_ptr()).ok {
                    self.done = true;
                    return None;
                }
                let ev = raw.as_mut_ptr();
                let line = (*ev).start_mark.line as usize + 1;
                let kind = match (*ev).type_ {
                    unsafe_sys::YAML_SCALAR_EVENT => {
                        let s = (*ev).data.scalar;
                        let bytes = if s.value.is_null() || !self.text {
                            &[][..]
                        } else {
                            std::slice::from_raw_parts(s.value, s.length as usize)
                        };
                        Some(Event::Scalar(String::from_utf8_lossy(bytes).into_owned()))
                    }
                    unsafe_sys::YAML_ALIAS_EVENT => Some(Event::Alias),
                    unsafe_sys::YAML_SEQUENCE_START_EVENT => Some(Event::SequenceStart),
                    unsafe_sys::YAML_SEQUENCE_END_EVENT => Some(Event::SequenceEnd),
                    unsafe_sys::YAML_MAPPING_START_EVENT => Some(Event::MappingStart),
                    unsafe_sys::YAML_MAPPING_END_EVENT => Some(Event::MappingEnd),
                    unsafe_sys::YAML_DOCUMENT_START_EVENT => Some(Event::DocumentStart),
                    unsafe_sys::YAML_DOCUMENT_END_EVENT => Some(Event::DocumentEnd),
                    unsafe_sys::YAML_STREAM_END_EVENT => {
                        self.done = true;
                        None
                    }
                    _ => None,
                };
                unsafe_sys::yaml_event_delete(ev);
                kind.map(|k| (line, k))
            };
            if let Some(item) = item {
                return Some(item);
            }
        }
    }
}

impl Drop for Events<'_> {
    fn drop(&mut self) {
        // SAFETY: the parser was initialised in `new` (when that failed it holds zeroed or
        // partly allocated buffers, which `yaml_parser_delete` frees as well) and is deleted
        // once, here.
        unsafe { unsafe_sys::yaml_parser_delete(self.parser.as_mut_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_their_lines() {
        let ev: Vec<_> = Events::new("a: 1\nb:\n  - x\n  - [y, *z]\n").collect();
        assert_eq!(
            ev,
            vec![
                (1, Event::DocumentStart),
                (1, Event::MappingStart),
                (1, Event::Scalar("a".into())),
                (1, Event::Scalar("1".into())),
                (2, Event::Scalar("b".into())),
                (3, Event::SequenceStart),
                (3, Event::Scalar("x".into())),
                (4, Event::SequenceStart),
                (4, Event::Scalar("y".into())),
                (4, Event::Alias),
                (4, Event::SequenceEnd),
                (5, Event::SequenceEnd),
                (5, Event::MappingEnd),
                (5, Event::DocumentEnd),
            ]
        );
    }

    #[test]
    fn a_syntax_error_ends_the_stream() {
        let ev: Vec<_> = Events::new("a: [\n").collect();
        assert_eq!(ev.last(), Some(&(1, Event::SequenceStart)));
        assert_eq!(Events::new("").count(), 0);
        assert_eq!(Events::new("\u{0}\u{1}").count(), 0);
    }
}

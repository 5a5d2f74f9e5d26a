//! The metric matcher: a `/metrics` answer (Prometheus text exposition) parsed once into
//! samples, each found by its name and its label *set*, so no check depends on the order the
//! exporter writes labels in.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// A series' labels: (name, value) pairs.
type Labels = Vec<(String, String)>;

/// One sample line: `name{labels} value`, labels sorted by name.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: Labels,
    value: f64,
}

impl Sample {
    /// Whether every pair of `wanted` is among this sample's labels.
    fn has_labels(&self, wanted: &[(&str, &str)]) -> bool {
        wanted
            .iter()
            .all(|(k, v)| self.labels.iter().any(|(lk, lv)| lk == k && lv == v))
    }

    /// Whether this sample's labels are exactly `wanted`, in any order.
    fn has_exactly(&self, wanted: &[(&str, &str)]) -> bool {
        self.labels.len() == wanted.len() && self.has_labels(wanted)
    }
}

/// A parsed `/metrics` answer; its text is kept for the checks that search all output (for
/// secrets, for example).
pub struct Metrics {
    text: String,
    samples: Vec<Sample>,
}

impl Metrics {
    /// Parses a text exposition; panics naming the line it cannot read (the exporter wrote
    /// something no Prometheus could scrape).
    pub fn parse(text: String) -> Metrics {
        let samples = text
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| parse_line(l).unwrap_or_else(|e| panic!("metrics line {l:?}: {e}")))
            .collect();
        Metrics { text, samples }
    }

    /// The exposition as the sidecar wrote it.
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn into_text(self) -> String {
        self.text
    }

    /// The value of series `name` whose labels are exactly `labels` (in any order); `None`
    /// when the sidecar does not export it.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|s| s.name == name && s.has_exactly(labels))
            .map(|s| s.value)
    }

    /// The sum over every series `name` whose labels include `labels` (0 when there is none).
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// Whether some series `name` has labels including `labels`.
    pub fn has(&self, name: &str, labels: &[(&str, &str)]) -> bool {
        self.matching(name, labels).next().is_some()
    }

    /// Every series `name`: its labels by name, and its value.
    pub fn samples(&self, name: &str) -> Vec<(BTreeMap<&str, &str>, f64)> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| {
                let labels = s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str()));
                (labels.collect(), s.value)
            })
            .collect()
    }

    /// Every series as `name{k="v",...}` with labels sorted, without values.
    pub fn series(&self) -> BTreeSet<String> {
        self.samples
            .iter()
            .map(|s| {
                let labels: Vec<String> =
                    s.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                format!("{}{{{}}}", s.name, labels.join(","))
            })
            .collect()
    }

    /// Every `(label, value)` pair of every series.
    pub fn label_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.samples
            .iter()
            .flat_map(|s| s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&str, &str)],
    ) -> impl Iterator<Item = &'a Sample> {
        self.samples
            .iter()
            .filter(move |s| s.name == name && s.has_labels(labels))
    }
}

impl fmt::Display for Metrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// `name value` or `name{k="v",...} value` (an optional timestamp after the value).
fn parse_line(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value after the name")?;
    let name = &line[..name_end];
    if name.is_empty() {
        return Err("no metric name".into());
    }
    let (mut labels, rest) = if line[name_end..].starts_with('{') {
        parse_labels(&line[name_end + 1..])?
    } else {
        (Vec::new(), &line[name_end..])
    };
    let value = rest
        .split_whitespace()
        .next()
        .ok_or("no value")?
        .parse::<f64>()
        .map_err(|e| format!("value: {e}"))?;
    labels.sort();
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// The labels after `{` up to the closing `}`, unescaping `\\`, `\"` and `\n` in values; the
/// text after `}`.
fn parse_labels(mut s: &str) -> Result<(Labels, &str), String> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches([',', ' ']);
        if let Some(rest) = s.strip_prefix('}') {
            return Ok((labels, rest));
        }
        let (key, after) = s.split_once("=\"").ok_or("a label without =\"")?;
        let mut value = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().ok_or("an unterminated label value")? {
                (i, '"') => break i,
                (_, '\\') => match chars.next().ok_or("an escape at the end")?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (_, c) => value.push(c),
            }
        };
        labels.push((key.to_string(), value));
        s = &after[end + 1..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# HELP wecom_api_requests_total Calls.\n\
        # TYPE wecom_api_requests_total counter\n\
        wecom_api_requests_total{api=\"user/get\",result=\"ok\"} 3\n\
        wecom_api_requests_total{result=\"error\",api=\"user/get\"} 2\n\
        wecom_api_requests_total{api=\"message/send\",result=\"ok\"} 1\n\
        wecom_redis_up 1\n\
        wecom_seconds_bucket{le=\"+Inf\",path=\"a\\\"b\\\\c\\nd\"} 4 1700000000\n\
        \n";

    fn metrics() -> Metrics {
        Metrics::parse(TEXT.to_string())
    }

    #[test]
    fn a_value_is_found_by_its_label_set_in_any_order() {
        let m = metrics();
        let ok = [("api", "user/get"), ("result", "ok")];
        let reversed = [("result", "ok"), ("api", "user/get")];
        assert_eq!(m.value("wecom_api_requests_total", &ok), Some(3.0));
        assert_eq!(m.value("wecom_api_requests_total", &reversed), Some(3.0));
        let error = [("api", "user/get"), ("result", "error")];
        assert_eq!(m.value("wecom_api_requests_total", &error), Some(2.0));
    }

    #[test]
    fn a_value_needs_the_whole_label_set() {
        let m = metrics();
        assert_eq!(
            m.value("wecom_api_requests_total", &[("api", "user/get")]),
            None
        );
        let more = [("api", "user/get"), ("result", "ok"), ("app", "hr")];
        assert_eq!(m.value("wecom_api_requests_total", &more), None);
        assert_eq!(m.value("wecom_redis_up", &[]), Some(1.0));
        assert_eq!(m.value("wecom_redis", &[]), None, "a name is matched whole");
    }

    #[test]
    fn sum_and_has_take_a_subset_of_the_labels() {
        let m = metrics();
        assert_eq!(
            m.sum("wecom_api_requests_total", &[("api", "user/get")]),
            5.0
        );
        assert_eq!(m.sum("wecom_api_requests_total", &[]), 6.0);
        assert_eq!(m.sum("wecom_api_requests_total", &[("api", "none")]), 0.0);
        assert!(m.has("wecom_api_requests_total", &[("result", "error")]));
        assert!(!m.has("wecom_api_requests_total", &[("result", "timeout")]));
        assert!(!m.has("wecom_api_requests", &[]));
    }

    #[test]
    fn escaped_label_values_infinity_and_timestamps_are_read() {
        let m = metrics();
        let labels = [("le", "+Inf"), ("path", "a\"b\\c\nd")];
        assert_eq!(m.value("wecom_seconds_bucket", &labels), Some(4.0));
    }

    #[test]
    fn series_and_label_pairs_list_every_sample() {
        let m = metrics();
        let series = m.series();
        assert_eq!(series.len(), 5);
        assert!(series.contains("wecom_api_requests_total{api=\"user/get\",result=\"error\"}"));
        assert!(series.contains("wecom_redis_up{}"));
        let samples = m.samples("wecom_api_requests_total");
        assert_eq!(samples.len(), 3);
        assert!(samples.iter().all(|(labels, _)| labels.len() == 2));
        assert_eq!(samples.iter().map(|(_, v)| v).sum::<f64>(), 6.0);
        let pairs: Vec<_> = m.label_pairs().collect();
        assert_eq!(pairs.len(), 8);
        assert!(pairs.contains(&("api", "message/send")));
        assert_eq!(m.text(), TEXT);
    }

    #[test]
    fn a_line_no_scraper_could_read_is_an_error() {
        for bad in [
            "wecom_x",
            "{a=\"b\"} 1",
            "wecom_x{a=\"b} 1",
            "wecom_x{a} 1",
            "wecom_x{a=\"b\"}",
            "wecom_x one",
        ] {
            assert!(parse_line(bad).is_err(), "{bad:?} was read");
        }
    }
}

//! A parser of Prometheus' text exposition format (0.0.4), written from the format's
//! specification, to read `/metrics` the way a Prometheus server does: `# HELP` and `# TYPE`
//! lines, samples with escaped label values, and the checks a scrape would fail on (a sample of
//! no declared family, a series twice, a histogram whose buckets are not cumulative).

use std::collections::BTreeMap;

/// One sample: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A metric family: its `# TYPE`, `# HELP` and samples.
#[derive(Debug, Clone, Default)]
pub struct Family {
    pub kind: String,
    pub help: Option<String>,
    pub samples: Vec<Sample>,
}

/// A parsed scrape.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    pub families: BTreeMap<String, Family>,
}

impl Exposition {
    /// The value of the sample `name` with exactly `labels`, if any.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples(name)
            .find(|s| s.labels == wanted)
            .map(|s| s.value)
    }

    /// Every sample named `name`.
    pub fn samples<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.families
            .values()
            .flat_map(|f| f.samples.iter())
            .filter(move |s| s.name == name)
    }

    /// The value of the unlabelled sample `name`; panics when there is none.
    pub fn get(&self, name: &str) -> f64 {
        self.value(name, &[])
            .unwrap_or_else(|| panic!("no sample {name} in the scrape"))
    }
}

/// The family a sample named `name` belongs to, given the declared families: itself, or for a
/// histogram or summary its base name.
fn family_of<'a>(name: &'a str, families: &BTreeMap<String, Family>) -> Option<&'a str> {
    if families.contains_key(name) {
        return Some(name);
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && families
                .get(base)
                .is_some_and(|f| f.kind == "histogram" || f.kind == "summary")
        {
            return Some(base);
        }
    }
    None
}

fn is_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    is_name(name) && !name.contains(':')
}

fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "+Inf" | "Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => text
            .parse::<f64>()
            .map_err(|_| format!("bad value {text:?}")),
    }
}

/// Reads `{a="x",b="y"}` from the start of `text`; returns the labels and the rest.
fn parse_labels(text: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut labels = BTreeMap::new();
    let mut rest = text.strip_prefix('{').ok_or("labels must start with {")?;
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((labels, after));
        }
        let eq = rest.find('=').ok_or("a label without =")?;
        let name = rest[..eq].trim();
        if !is_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..]
            .trim_start()
            .strip_prefix('"')
            .ok_or("a label value must be quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape in a label value: {other:?}")),
                },
                Some((i, '"')) => break i,
                Some((_, c)) => value.push(c),
                None => return Err("unterminated label value".to_owned()),
            }
        };
        if labels.insert(name.to_owned(), value).is_some() {
            return Err(format!("label {name} twice"));
        }
        rest = rest[end + 1..].trim_start();
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err("labels must be separated by commas".to_owned());
        }
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(['{', ' ', '\t'])
        .ok_or("a sample without a value")?;
    let name = &line[..name_end];
    if !is_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    let (labels, rest) = if line[name_end..].starts_with('{') {
        parse_labels(&line[name_end..])?
    } else {
        (BTreeMap::new(), &line[name_end..])
    };
    let mut fields = rest.split_whitespace();
    let value = parse_value(fields.next().ok_or("a sample without a value")?)?;
    if let Some(timestamp) = fields.next() {
        timestamp
            .parse::<i64>()
            .map_err(|_| format!("bad timestamp {timestamp:?}"))?;
    }
    if fields.next().is_some() {
        return Err("text after the timestamp".to_owned());
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Parses a scrape, failing on anything a Prometheus server would refuse or misread.
pub fn parse(text: &str) -> Result<Exposition, String> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut series = std::collections::HashSet::new();
    for (n, line) in text.lines().enumerate() {
        let at = |e: String| format!("line {}: {e}: {line:?}", n + 1);
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.trim_start().splitn(3, ' ');
            match (words.next(), words.next(), words.next()) {
                (Some("TYPE"), Some(name), Some(kind)) => {
                    if !is_name(name) {
                        return Err(at(format!("bad metric name {name:?}")));
                    }
                    if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                        return Err(at(format!("unknown type {kind:?}")));
                    }
                    let family = families.entry(name.to_owned()).or_default();
                    if !family.kind.is_empty() {
                        return Err(at("a second TYPE for the family".to_owned()));
                    }
                    if !family.samples.is_empty() {
                        return Err(at("TYPE after the family's samples".to_owned()));
                    }
                    family.kind = kind.to_owned();
                }
                (Some("HELP"), Some(name), help) => {
                    families.entry(name.to_owned()).or_default().help =
                        Some(help.unwrap_or_default().to_owned());
                }
                _ => {} // another comment
            }
            continue;
        }
        let sample = parse_sample(line).map_err(at)?;
        let family = family_of(&sample.name, &families)
            .filter(|f| !families[*f].kind.is_empty())
            .ok_or_else(|| at("a sample of no declared family".to_owned()))?
            .to_owned();
        if !series.insert((sample.name.clone(), sample.labels.clone())) {
            return Err(at("the same series twice".to_owned()));
        }
        families.get_mut(&family).unwrap().samples.push(sample);
    }
    for (name, family) in &families {
        if family.kind.is_empty() {
            return Err(format!("{name}: HELP without TYPE"));
        }
        if family.kind == "counter" && !name.ends_with("_total") {
            return Err(format!(
                "{name}: a counter whose name does not end in _total"
            ));
        }
        if family.kind == "histogram" {
            check_histogram(name, family)?;
        }
    }
    Ok(Exposition { families })
}

/// Per series of a histogram: buckets cumulative, `+Inf` present and equal to `_count`.
fn check_histogram(name: &str, family: &Family) -> Result<(), String> {
    let mut series: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
    let mut counts = BTreeMap::new();
    for sample in &family.samples {
        let mut labels = sample.labels.clone();
        if sample.name == format!("{name}_bucket") {
            let le = labels
                .remove("le")
                .ok_or_else(|| format!("{name}: a bucket without le"))?;
            series
                .entry(labels)
                .or_default()
                .push((parse_value(&le)?, sample.value));
        } else if sample.name == format!("{name}_count") {
            counts.insert(labels, sample.value);
        }
    }
    for (labels, mut buckets) in series {
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        if buckets.windows(2).any(|w| w[1].1 < w[0].1) {
            return Err(format!("{name}{labels:?}: buckets not cumulative"));
        }
        let last = buckets.last().unwrap();
        if last.0 != f64::INFINITY {
            return Err(format!("{name}{labels:?}: no +Inf bucket"));
        }
        if counts.get(&labels) != Some(&last.1) {
            return Err(format!("{name}{labels:?}: _count is not the +Inf bucket"));
        }
    }
    Ok(())
}

#[test]
fn the_parser_reads_the_format_and_refuses_what_prometheus_would() {
    let text = "# HELP a_total Things, with \\\\ and a newline\\n.\n\
                # TYPE a_total counter\n\
                a_total{route=\"/x/{id}\",msg=\"say \\\"hi\\\"\\n\"} 3\n\
                a_total{route=\"/y\",} 4 1700000000000\n\
                # TYPE b gauge\n\
                b -1.5e3\n\
                # TYPE h histogram\n\
                h_bucket{le=\"0.5\"} 1\n\
                h_bucket{le=\"+Inf\"} 2\n\
                h_sum 0.75\n\
                h_count 2\n";
    let scrape = parse(text).unwrap();
    assert_eq!(
        scrape.value("a_total", &[("route", "/x/{id}"), ("msg", "say \"hi\"\n")]),
        Some(3.0)
    );
    assert_eq!(scrape.value("a_total", &[("route", "/y")]), Some(4.0));
    assert_eq!(scrape.get("b"), -1500.0);
    assert_eq!(scrape.get("h_sum"), 0.75);
    assert_eq!(scrape.families["h"].samples.len(), 4);
    assert_eq!(scrape.families["a_total"].kind, "counter");

    for (bad, why) in [
        ("c 1\n", "no TYPE"),
        (
            "# TYPE c gauge\nc{a=\"1\"} 1\nc{a=\"1\"} 2\n",
            "a series twice",
        ),
        ("# TYPE c gauge\nc{a=1} 1\n", "an unquoted value"),
        ("# TYPE c gauge\nc{a=\"1\" b=\"2\"} 1\n", "no comma"),
        ("# TYPE c gauge\nc{a=\"x\\q\"} 1\n", "a bad escape"),
        ("# TYPE c gauge\nc{a=\"x} 1\n", "an unterminated value"),
        ("# TYPE c gauge\nc\n", "no value"),
        ("# TYPE c gauge\nc one\n", "a bad value"),
        ("# TYPE c gauge\nc 1 2 3\n", "text after the timestamp"),
        ("# TYPE c metre\nc 1\n", "an unknown type"),
        ("# TYPE c counter\nc 1\n", "a counter without _total"),
        ("# TYPE 1c gauge\n1c 1\n", "a bad name"),
        (
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
            "buckets not cumulative",
        ),
        (
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 2\nh_count 3\n",
            "_count not the +Inf bucket",
        ),
    ] {
        assert!(parse(bad).is_err(), "accepted {why}: {bad:?}");
    }
}

//! SVG rendering of a [`Timeline`]: a line chart with one line per event type, a title, a legend,
//! and axes with time and count labels.
//!
//! Hand-written SVG, no dependency: the output is a standalone document (`image/svg+xml`) that
//! also works inline in HTML. Every piece of text goes through [`escape`].

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use github_stats_core::{EventType, Timeline};

/// Size and title of a chart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartOptions {
    /// Width in pixels (the `viewBox` width too).
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Title drawn at the top; `None` for one derived from the bucket length.
    pub title: Option<String>,
}

impl Default for ChartOptions {
    fn default() -> Self {
        ChartOptions {
            width: 960,
            height: 420,
            title: None,
        }
    }
}

/// The colour of each event type's line (Okabe-Ito palette, readable by colour-blind people);
/// the dashboard's stylesheet uses the same ones.
pub const fn series_colour(event_type: EventType) -> &'static str {
    match event_type {
        EventType::WatchEvent => "#e69f00",
        EventType::PullRequestEvent => "#0072b2",
        EventType::IssuesEvent => "#009e73",
    }
}

/// Escapes `text` for XML character data and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters other than tab and newlines are not allowed in XML 1.0.
            c if c.is_control() && !matches!(c, '\t' | '\n' | '\r') => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// A human bucket length: "1 minute", "5 minutes", "2 hours", "1 day", "90 seconds".
pub fn describe_duration(seconds: i64) -> String {
    let (n, unit) = if seconds % 86_400 == 0 {
        (seconds / 86_400, "day")
    } else if seconds % 3600 == 0 {
        (seconds / 3600, "hour")
    } else if seconds % 60 == 0 {
        (seconds / 60, "minute")
    } else {
        (seconds, "second")
    };
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

/// What follows "per" for a bucket length: "minute", "5 minutes", "hour", "2 days".
pub fn per_duration(seconds: i64) -> String {
    let described = describe_duration(seconds);
    described
        .strip_prefix("1 ")
        .map(str::to_owned)
        .unwrap_or(described)
}

// Plot area margins.
const MARGIN_LEFT: f64 = 64.0;
const MARGIN_RIGHT: f64 = 24.0;
const MARGIN_TOP: f64 = 78.0;
const MARGIN_BOTTOM: f64 = 58.0;
/// Above this many buckets, points get no markers (they would merge into a thick line).
const MAX_MARKED_BUCKETS: usize = 120;
const FONT: &str = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";

/// Renders `timeline` as a standalone SVG document.
pub fn render_svg(timeline: &Timeline, options: &ChartOptions) -> String {
    let layout = Layout::new(timeline, options);
    let totals: Vec<(EventType, u64)> = EventType::ALL
        .into_iter()
        .map(|t| (t, timeline.counts[t.index()].iter().sum()))
        .collect();

    let mut svg = String::with_capacity(8192 + layout.starts.len() * 3 * 48);
    write_header(&mut svg, &layout, timeline, options, &totals);
    write_legend(&mut svg, &layout, &totals);
    write_count_axis(&mut svg, &layout, timeline.bucket_seconds);
    write_time_axis(&mut svg, &layout);
    write_series(&mut svg, &layout, timeline);
    if layout.max_count == 0 {
        write_empty_notice(&mut svg, &layout);
    }
    svg.push_str("</svg>\n");
    svg
}

/// Where everything goes: the plot area in pixels, and the time and count ranges it maps.
struct Layout {
    width: f64,
    height: f64,
    plot_left: f64,
    plot_right: f64,
    plot_top: f64,
    plot_bottom: f64,
    /// Bucket length in seconds, at least 1.
    bucket: i64,
    /// Bucket starts, Unix seconds.
    starts: Vec<i64>,
    /// The time range of the x axis, Unix seconds; `x1 > x0`.
    x0: i64,
    x1: i64,
    max_count: u64,
    y_step: u64,
    /// The top of the count axis: a multiple of `y_step`, at least `y_step`.
    y_max: u64,
}

impl Layout {
    fn new(timeline: &Timeline, options: &ChartOptions) -> Self {
        let width = f64::from(options.width.max(320));
        let height = f64::from(options.height.max(200));

        let bucket = timeline.bucket_seconds.max(1);
        let starts: Vec<i64> = timeline
            .bucket_starts
            .iter()
            .map(DateTime::timestamp)
            .collect();
        let x0 = starts
            .first()
            .copied()
            .unwrap_or_else(|| timeline.window.since_ts());
        let x1 = starts
            .last()
            .map(|s| s + bucket)
            .unwrap_or_else(|| timeline.window.until_ts())
            .max(x0 + 1);

        let max_count = timeline
            .counts
            .iter()
            .flat_map(|c| c.iter().copied())
            .max()
            .unwrap_or(0);
        let y_step = nice_step(max_count, 5);
        let y_max = max_count
            .div_ceil(y_step)
            .saturating_mul(y_step)
            .max(y_step);

        Layout {
            width,
            height,
            plot_left: MARGIN_LEFT,
            plot_right: width - MARGIN_RIGHT,
            plot_top: MARGIN_TOP,
            plot_bottom: height - MARGIN_BOTTOM,
            bucket,
            starts,
            x0,
            x1,
            max_count,
            y_step,
            y_max,
        }
    }

    /// The x pixel of time `t` (Unix seconds).
    fn x_of(&self, t: f64) -> f64 {
        self.plot_left
            + (t - self.x0 as f64) / (self.x1 - self.x0) as f64 * (self.plot_right - self.plot_left)
    }

    /// The y pixel of count `v`.
    fn y_of(&self, v: u64) -> f64 {
        self.plot_bottom - v as f64 / self.y_max as f64 * (self.plot_bottom - self.plot_top)
    }

    /// The x pixel of the middle of the bucket starting at `start`, where its point goes.
    fn bucket_middle_x(&self, start: i64) -> f64 {
        self.x_of(start as f64 + self.bucket as f64 / 2.0)
    }
}

/// The document's opening: the `<svg>` element, its accessible title and description, the
/// background, the drawn title and subtitle.
fn write_header(
    svg: &mut String,
    layout: &Layout,
    timeline: &Timeline,
    options: &ChartOptions,
    totals: &[(EventType, u64)],
) {
    let title = options.title.clone().unwrap_or_else(|| {
        format!(
            "GitHub events per {}",
            per_duration(timeline.bucket_seconds)
        )
    });
    let subtitle = format!(
        "{} to {} UTC",
        format_time(timeline.window.since, "%Y-%m-%d %H:%M:%S"),
        format_time(timeline.window.until, "%Y-%m-%d %H:%M:%S"),
    );
    let description = format!(
        "{subtitle}: {}",
        totals
            .iter()
            .map(|(t, n)| format!("{n} {t}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    // `write!` into a String cannot fail.
    let _ = write!(
        svg,
        r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" class="timeline-chart" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" aria-labelledby="chart-title chart-desc" font-family="{font}" font-size="12">
<title id="chart-title">{title}</title>
<desc id="chart-desc">{desc}</desc>
<rect class="background" x="0" y="0" width="{w}" height="{h}" fill="#ffffff"/>
<text class="title" x="{plot_left}" y="26" font-size="17" font-weight="600" fill="#1f2328">{title}</text>
<text class="subtitle" x="{plot_left}" y="46" fill="#59636e">{subtitle}</text>
"##,
        w = layout.width,
        h = layout.height,
        plot_left = layout.plot_left,
        font = escape(FONT),
        title = escape(&title),
        desc = escape(&description),
        subtitle = escape(&subtitle),
    );
}

/// The legend, right-aligned on the subtitle's line: per type a swatch, its name and its total.
fn write_legend(svg: &mut String, layout: &Layout, totals: &[(EventType, u64)]) {
    // Laid out from the right edge, so the last type is placed first.
    let mut legend_x = layout.plot_right;
    let mut legend = Vec::new();
    for (event_type, total) in totals.iter().rev() {
        let label = format!("{event_type} ({total})");
        // A rough width for 12px sans-serif text; the swatch takes 22px more.
        let item_width = label.chars().count() as f64 * 6.8 + 22.0 + 16.0;
        legend_x -= item_width;
        legend.push((legend_x, *event_type, label));
    }
    svg.push_str("<g class=\"legend\">\n");
    for (x, event_type, label) in legend.iter().rev() {
        let _ = writeln!(
            svg,
            r##"<g class="legend-item" data-event-type="{ty}"><line x1="{x1:.1}" y1="60" x2="{x2:.1}" y2="60" stroke="{colour}" stroke-width="3" stroke-linecap="round"/><text x="{tx:.1}" y="64" fill="#1f2328">{label}</text></g>"##,
            ty = event_type.as_str(),
            x1 = x,
            x2 = x + 16.0,
            tx = x + 22.0,
            colour = series_colour(*event_type),
            label = escape(label),
        );
    }
    svg.push_str("</g>\n");
}

/// The count axis: horizontal grid lines with their counts, and the axis label.
fn write_count_axis(svg: &mut String, layout: &Layout, bucket_seconds: i64) {
    let (plot_left, plot_right) = (layout.plot_left, layout.plot_right);
    svg.push_str("<g class=\"y-axis\" fill=\"#59636e\" text-anchor=\"end\">\n");
    let mut next = Some(0u64);
    while let Some(v) = next.filter(|&v| v <= layout.y_max) {
        let y = layout.y_of(v);
        let _ = writeln!(
            svg,
            r##"<line x1="{plot_left}" y1="{y:.1}" x2="{plot_right}" y2="{y:.1}" stroke="{stroke}" stroke-width="1"/><text x="{tx}" y="{ty:.1}">{v}</text>"##,
            stroke = if v == 0 { "#8c959f" } else { "#e6e8eb" },
            tx = plot_left - 8.0,
            ty = y + 4.0,
        );
        next = v.checked_add(layout.y_step);
    }
    let _ = writeln!(
        svg,
        r#"<text class="axis-label" transform="translate(16 {cy:.1}) rotate(-90)" text-anchor="middle">events per {bucket}</text>"#,
        cy = (layout.plot_top + layout.plot_bottom) / 2.0,
        bucket = escape(&per_duration(bucket_seconds)),
    );
    svg.push_str("</g>\n");
}

/// The time axis: ticks with their times (and the date where the day changes), and the axis
/// label.
fn write_time_axis(svg: &mut String, layout: &Layout) {
    let plot_bottom = layout.plot_bottom;
    svg.push_str("<g class=\"x-axis\" fill=\"#59636e\" text-anchor=\"middle\">\n");
    let mut previous_day = None;
    for (t, step) in time_ticks(layout.x0, layout.x1) {
        let x = layout.x_of(t as f64);
        let Some(time) = DateTime::<Utc>::from_timestamp(t, 0) else {
            continue;
        };
        let day = time.date_naive();
        let (line1, line2) = if step >= 86_400 {
            (format_time(time, "%b %d"), None)
        } else if previous_day != Some(day) {
            (format_time(time, "%H:%M"), Some(format_time(time, "%b %d")))
        } else {
            (format_time(time, "%H:%M"), None)
        };
        previous_day = Some(day);
        let _ = write!(
            svg,
            r##"<line x1="{x:.1}" y1="{plot_bottom}" x2="{x:.1}" y2="{tick_end}" stroke="#8c959f" stroke-width="1"/><text x="{x:.1}" y="{ty}">{line1}</text>"##,
            tick_end = plot_bottom + 5.0,
            ty = plot_bottom + 19.0,
            line1 = escape(&line1),
        );
        if let Some(line2) = line2 {
            let _ = write!(
                svg,
                r#"<text x="{x:.1}" y="{ty}">{line2}</text>"#,
                ty = plot_bottom + 34.0,
                line2 = escape(&line2),
            );
        }
        svg.push('\n');
    }
    let _ = writeln!(
        svg,
        r#"<text class="axis-label" x="{cx:.1}" y="{ty}">time (UTC)</text>"#,
        cx = (layout.plot_left + layout.plot_right) / 2.0,
        ty = layout.height - 6.0,
    );
    svg.push_str("</g>\n");
}

/// One line per type, its points at the middle of their bucket; with few enough buckets, a
/// marker with a tooltip on each point.
fn write_series(svg: &mut String, layout: &Layout, timeline: &Timeline) {
    let marked = layout.starts.len() <= MAX_MARKED_BUCKETS;
    svg.push_str("<g class=\"series\" fill=\"none\" stroke-width=\"2\" stroke-linejoin=\"round\" stroke-linecap=\"round\">\n");
    for event_type in EventType::ALL {
        let counts = &timeline.counts[event_type.index()];
        let colour = series_colour(event_type);
        let _ = write!(
            svg,
            r#"<g class="line" data-event-type="{ty}" data-total="{total}" stroke="{colour}"><polyline points=""#,
            ty = event_type.as_str(),
            total = counts.iter().sum::<u64>(),
        );
        write_polyline_points(svg, layout, counts);
        svg.push_str("\"/>");
        if marked {
            write_point_markers(svg, layout, event_type, counts);
        }
        svg.push_str("</g>\n");
    }
    svg.push_str("</g>\n");
}

/// The `points` attribute's value of one type's line.
fn write_polyline_points(svg: &mut String, layout: &Layout, counts: &[u64]) {
    for (i, (&start, &count)) in layout.starts.iter().zip(counts).enumerate() {
        if i > 0 {
            svg.push(' ');
        }
        let _ = write!(
            svg,
            "{:.1},{:.1}",
            layout.bucket_middle_x(start),
            layout.y_of(count)
        );
    }
}

/// A circle per point of one type's line, titled with its bucket's time and count.
fn write_point_markers(svg: &mut String, layout: &Layout, event_type: EventType, counts: &[u64]) {
    let colour = series_colour(event_type);
    for (&start, &count) in layout.starts.iter().zip(counts) {
        let tooltip = format!(
            "{}: {count} {event_type}",
            DateTime::<Utc>::from_timestamp(start, 0)
                .map(|t| format_time(t, "%Y-%m-%d %H:%M"))
                .unwrap_or_default()
        );
        let _ = write!(
            svg,
            r##"<circle cx="{:.1}" cy="{:.1}" r="2.5" fill="{colour}" stroke="none"><title>{}</title></circle>"##,
            layout.bucket_middle_x(start),
            layout.y_of(count),
            escape(&tooltip),
        );
    }
}

/// The notice drawn over an empty plot, so a flat line at zero is not taken for a bug.
fn write_empty_notice(svg: &mut String, layout: &Layout) {
    let _ = writeln!(
        svg,
        r##"<text class="empty" x="{cx:.1}" y="{cy:.1}" text-anchor="middle" font-size="15" fill="#59636e">no events in this window</text>"##,
        cx = (layout.plot_left + layout.plot_right) / 2.0,
        cy = (layout.plot_top + layout.plot_bottom) / 2.0,
    );
}

fn format_time(time: DateTime<Utc>, format: &str) -> String {
    time.format(format).to_string()
}

/// A step of 1, 2 or 5 times a power of ten, at least 1, giving about `ticks` steps up to `max`.
fn nice_step(max: u64, ticks: u64) -> u64 {
    let raw = max.div_ceil(ticks.max(1)).max(1);
    let mut magnitude = 1u64;
    while magnitude.saturating_mul(10) <= raw {
        magnitude *= 10;
    }
    [1, 2, 5, 10]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|&step| step >= raw)
        .unwrap_or(10 * magnitude)
}

/// Tick lengths for the time axis, in seconds.
const TIME_STEPS: &[i64] = &[
    1,
    2,
    5,
    10,
    15,
    30,
    60,
    2 * 60,
    5 * 60,
    10 * 60,
    15 * 60,
    30 * 60,
    3600,
    2 * 3600,
    3 * 3600,
    6 * 3600,
    12 * 3600,
    86_400,
    2 * 86_400,
    7 * 86_400,
    14 * 86_400,
    28 * 86_400,
    56 * 86_400,
    91 * 86_400,
];

/// At most about 8 ticks on `[from, to]`, at multiples of a round step since the epoch; each
/// with the step used.
fn time_ticks(from: i64, to: i64) -> Vec<(i64, i64)> {
    let span = (to - from).max(1);
    let step = TIME_STEPS
        .iter()
        .copied()
        .find(|&s| span / s <= 8)
        .unwrap_or((span + 7) / 8);
    let first = from.div_euclid(step) * step;
    let first = if first < from { first + step } else { first };
    (0..)
        .map(|i| first + i * step)
        .take_while(|&t| t <= to)
        .map(|t| (t, step))
        .collect()
}

#[cfg(test)]
mod tests {
    use github_stats_core::TimeWindow;

    use super::*;

    fn timeline(since: i64, bucket: i64, counts: [Vec<u64>; 3]) -> Timeline {
        let n = counts[0].len() as i64;
        let t = |s| DateTime::from_timestamp(s, 0).unwrap();
        Timeline {
            window: TimeWindow::new(t(since), t(since + n * bucket)).unwrap(),
            bucket_seconds: bucket,
            bucket_starts: (0..n).map(|i| t(since + i * bucket)).collect(),
            counts,
        }
    }

    fn parse(svg: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse(svg).expect("well-formed SVG")
    }

    #[test]
    fn text_is_escaped() {
        let title = r#"<script>alert("x")</script> & 'q' ]]> <!--"#;
        let tl = timeline(1_420_113_600, 60, [vec![1, 2], vec![0, 0], vec![3, 0]]);
        let svg = render_svg(
            &tl,
            &ChartOptions {
                title: Some(title.to_owned()),
                ..ChartOptions::default()
            },
        );
        let doc = parse(&svg);
        assert!(doc.descendants().all(|n| !n.has_tag_name("script")));
        let shown: Vec<&str> = doc
            .descendants()
            .filter(|n| n.has_tag_name("title") || n.has_attribute("class"))
            .filter_map(|n| n.text())
            .filter(|t| t.contains("alert"))
            .collect();
        assert_eq!(
            shown,
            [title, title],
            "the title element and the drawn title"
        );
    }

    #[test]
    fn long_timelines_have_no_markers_and_one_bucket_works() {
        let n = 500;
        let tl = timeline(0, 60, [vec![1; n], vec![2; n], vec![0; n]]);
        let svg = render_svg(&tl, &ChartOptions::default());
        let doc = parse(&svg);
        assert_eq!(
            doc.descendants()
                .filter(|n| n.has_tag_name("circle"))
                .count(),
            0
        );
        for polyline in doc.descendants().filter(|n| n.has_tag_name("polyline")) {
            assert_eq!(polyline.attribute("points").unwrap().split(' ').count(), n);
        }
        let tl = timeline(1_420_113_600, 3600, [vec![7], vec![0], vec![1]]);
        let doc_svg = render_svg(&tl, &ChartOptions::default());
        let doc = parse(&doc_svg);
        assert_eq!(
            doc.descendants()
                .filter(|n| n.has_tag_name("circle"))
                .count(),
            3
        );
        let title = doc.descendants().find(|n| n.has_tag_name("title")).unwrap();
        assert_eq!(title.text(), Some("GitHub events per hour"));
    }

    #[test]
    fn escape_covers_markup_and_controls() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;"
        );
        assert_eq!(escape("a\u{0}b\tc"), "a\u{fffd}b\tc");
    }

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(0, 5), 1);
        assert_eq!(nice_step(4, 5), 1);
        assert_eq!(nice_step(9, 5), 2);
        assert_eq!(nice_step(23, 5), 5);
        assert_eq!(nice_step(48, 5), 10);
        assert_eq!(nice_step(994, 5), 200);
        assert_eq!(nice_step(u64::MAX, 5), 5_000_000_000_000_000_000);
    }

    #[test]
    fn time_ticks_are_round_and_inside() {
        // One hour from 12:00: every 10 minutes.
        let from = 1_420_113_600;
        let ticks = time_ticks(from, from + 3600);
        assert_eq!(ticks.len(), 7);
        assert!(ticks.iter().all(|&(t, step)| step == 600 && t % 600 == 0));
        // An unaligned start gets its first tick at the next round time.
        let ticks = time_ticks(from + 7, from + 3600 + 7);
        assert_eq!(ticks[0].0, from + 600);
        assert!(ticks.len() <= 9);
        // A year: a handful of ticks.
        let ticks = time_ticks(0, 365 * 86_400);
        assert!((3..=9).contains(&ticks.len()), "{ticks:?}");
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(describe_duration(60), "1 minute");
        assert_eq!(describe_duration(300), "5 minutes");
        assert_eq!(describe_duration(7200), "2 hours");
        assert_eq!(describe_duration(86_400), "1 day");
        assert_eq!(describe_duration(90), "90 seconds");
        assert_eq!(per_duration(3600), "hour");
        assert_eq!(per_duration(600), "10 minutes");
    }
}

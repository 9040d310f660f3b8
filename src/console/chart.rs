//! The overview's chart: events accepted and guests delivered per hour as inline SVG bars (two
//! series, axis labels, a `<title>` saying what it shows), drawn from [`HourCounts`]. Each bar
//! carries its count in `data-n`, so what is drawn can be checked against the database.

use maud::{Markup, html};

use super::HourCounts;

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 260.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 40.0;

/// One series: its CSS class, its legend text and its count in an hour.
type Series = (&'static str, &'static str, fn(&HourCounts) -> i64);

/// The two series, in drawing order.
const SERIES: [Series; 2] = [
    ("accepted", "events accepted", |h| h.accepted),
    ("delivered", "guests delivered", |h| h.delivered),
];

fn hour_label(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%d %H:00").to_string())
        .unwrap_or_default()
}

pub(super) fn chart(hours: &[HourCounts]) -> Markup {
    let accepted: i64 = hours.iter().map(|h| h.accepted).sum();
    let delivered: i64 = hours.iter().map(|h| h.delivered).sum();
    let max = hours
        .iter()
        .flat_map(|h| [h.accepted, h.delivered])
        .max()
        .unwrap_or(0)
        .max(1);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let slot = plot_w / hours.len().max(1) as f64;
    let bar = (slot / 2.0 - 1.0).max(0.5);
    let y_of = |n: i64| TOP + plot_h - plot_h * n as f64 / max as f64;
    let summary = format!(
        "Events accepted and guests delivered per hour (UTC), last {} hours: {accepted} accepted, {delivered} delivered",
        hours.len()
    );
    let ticks = [0, max / 2, max];
    html! {
        svg id="chart" xmlns="http://www.w3.org/2000/svg" role="img"
            aria-labelledby="chart-title" viewBox=(format!("0 0 {WIDTH} {HEIGHT}"))
            data-accepted=(accepted) data-delivered=(delivered) {
            title id="chart-title" { (summary) }
            // Legend.
            @for (i, (class, text, _)) in SERIES.iter().enumerate() {
                @let x = LEFT + i as f64 * 180.0;
                rect class=(format!("{class} legend")) x=(x) y="6" width="12" height="12" {}
                text class="label" x=(x + 18.0) y="16" { (text) }
            }
            // Axes.
            line class="axis" x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(TOP + plot_h) {}
            line class="axis" x1=(LEFT) y1=(TOP + plot_h) x2=(WIDTH - RIGHT) y2=(TOP + plot_h) {}
            @for tick in ticks {
                @let y = y_of(tick);
                line class="grid" x1=(LEFT) y1=(y) x2=(WIDTH - RIGHT) y2=(y) {}
                text class="label" x=(LEFT - 6.0) y=(y + 4.0) text-anchor="end" { (tick) }
            }
            text class="label" x="12" y=(TOP + plot_h / 2.0) text-anchor="middle"
                transform=(format!("rotate(-90 12 {})", TOP + plot_h / 2.0)) { "per hour" }
            @for (i, hour) in hours.iter().enumerate() {
                @let x0 = LEFT + i as f64 * slot;
                @for (s, (class, text, count)) in SERIES.iter().enumerate() {
                    @let n = count(hour);
                    @let y = y_of(n);
                    rect class=(*class) x=(format!("{:.1}", x0 + 1.0 + s as f64 * (bar + 0.5)))
                        y=(format!("{y:.1}")) width=(format!("{bar:.1}"))
                        height=(format!("{:.1}", TOP + plot_h - y))
                        data-hour=(super::layout::time(hour.hour_start)) data-n=(n) {
                        title { (hour_label(hour.hour_start)) " UTC: " (n) " " (text) }
                    }
                }
                @if i % 6 == 0 {
                    text class="label" x=(format!("{:.1}", x0)) y=(TOP + plot_h + 16.0) {
                        (hour_label(hour.hour_start))
                    }
                }
            }
            text class="label" x=(LEFT + plot_w / 2.0) y=(HEIGHT - 4.0) text-anchor="middle" {
                "hour (UTC, day and hour)"
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_hour_has_a_bar_per_series_carrying_its_count() {
        let hours: Vec<HourCounts> = (0..48)
            .map(|i| HourCounts {
                hour_start: i * 3_600_000,
                accepted: i % 3,
                delivered: i % 2,
            })
            .collect();
        let svg = chart(&hours).into_string();
        assert_eq!(svg.matches("class=\"accepted\"").count(), 48);
        assert_eq!(svg.matches("class=\"delivered\"").count(), 48);
        assert!(svg.contains("data-accepted=\"48\""), "{svg}");
        assert!(svg.contains("data-delivered=\"24\""), "{svg}");
        assert!(svg.contains("<title id=\"chart-title\">"));
        assert!(!svg.contains("NaN") && !svg.contains("inf"));
    }
}

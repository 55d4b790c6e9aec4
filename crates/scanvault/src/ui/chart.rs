//! Line charts as inline SVG, drawn on the server (no script).

use maud::{html, Markup};

/// One line of a chart.
pub struct Series {
    pub name: &'static str,
    /// A CSS class giving its colour (`sev-critical`, …).
    pub class: &'static str,
    pub values: Vec<f64>,
}

const W: f64 = 760.0;
const H: f64 = 240.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 40.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

/// A round upper bound for the axis (1, 2 or 5 times a power of ten).
fn nice_max(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|v| *v >= max)
        .unwrap_or(10.0 * p)
}

fn label(v: f64) -> String {
    if v >= 1_000_000.0 {
        format!("{}M", v / 1_000_000.0)
    } else if v >= 1000.0 {
        format!("{}k", v / 1000.0)
    } else {
        format!("{v}")
    }
}

/// A line chart of `series` over `xs` (labels of the x axis, oldest first), with a legend
/// and a table of the same numbers for screen readers and keyboard users.
pub fn lines(title: &str, xs: &[String], series: &[Series]) -> Markup {
    let n = xs.len();
    let max = series
        .iter()
        .flat_map(|s| s.values.iter().copied())
        .fold(0.0, f64::max);
    let top = nice_max(max);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let x = |i: usize| {
        if n <= 1 {
            LEFT + plot_w / 2.0
        } else {
            LEFT + plot_w * i as f64 / (n - 1) as f64
        }
    };
    let y = |v: f64| TOP + plot_h * (1.0 - v / top);
    let every = (n / 8).max(1);
    html! {
        figure.chart {
            svg role="img" aria-labelledby="chart-title" viewBox=(format!("0 0 {W} {H}"))
                xmlns="http://www.w3.org/2000/svg" preserveAspectRatio="xMidYMid meet" {
                title #chart-title { (title) }
                @for k in 0..=4 {
                    @let v = top * k as f64 / 4.0;
                    line.grid x1=(LEFT) x2=(W - RIGHT) y1=(y(v)) y2=(y(v)) {}
                    text.axis x=(LEFT - 6.0) y=(y(v) + 4.0) text-anchor="end" { (label(v)) }
                }
                @for (i, xl) in xs.iter().enumerate() {
                    @if i % every == 0 || i + 1 == n {
                        text.axis x=(x(i)) y=(H - 8.0) text-anchor="middle" { (xl) }
                    }
                }
                @for s in series {
                    @let points: Vec<String> = s.values.iter().enumerate()
                        .map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v))).collect();
                    polyline class=(format!("line {}", s.class)) points=(points.join(" ")) {
                        title { (s.name) }
                    }
                    @if n == 1 {
                        circle class=(format!("dot {}", s.class)) cx=(x(0)) cy=(y(s.values[0])) r="4" {}
                    }
                }
            }
            figcaption {
                ul.legend {
                    @for s in series {
                        li { span class=(format!("swatch {}", s.class)) {} (s.name) }
                    }
                }
            }
            details {
                summary { "The numbers" }
                table {
                    thead { tr { th scope="col" { "When" } @for s in series { th scope="col" { (s.name) } } } }
                    tbody {
                        @for (i, xl) in xs.iter().enumerate().rev() {
                            tr {
                                th scope="row" { (xl) }
                                @for s in series { td.n { (s.values.get(i).copied().unwrap_or(0.0)) } }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_tops_are_round() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(12.0), 20.0);
        assert_eq!(nice_max(4500.0), 5000.0);
        assert_eq!(nice_max(5000.0), 5000.0);
    }
}

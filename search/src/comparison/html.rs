//! The one-page HTML report of a comparison (`report.html`): each setting's figures with
//! their 95 % intervals, the plots beside the page, and the paired differences of the pass
//! rates, each marked where its interval excludes zero. Self-contained but for the plots'
//! PNG files, which sit in the same directory; everything from data is escaped.

use super::stats::{Comparison, Metric};
use crate::intervals::Interval;
use crate::report::{escape_html, table, STYLE};

/// Metrics of the pairs tables: the ones a reader compares methods by.
const PAIR_METRICS: [Metric; 5] = [
    Metric::Pass1Mcts,
    Metric::PassN,
    Metric::Pass1,
    Metric::HeldOutAfter,
    Metric::HeldOutChange,
];

/// A figure with its interval: rates in percent, the rest with one decimal.
fn shown(metric: Metric, interval: &Interval) -> String {
    let i = if metric.is_rate() {
        interval.scaled(100.0)
    } else {
        *interval
    };
    let unit = if metric.is_rate() { "%" } else { "" };
    format!(
        "{:.1}{unit} <span class=\"metrics\">[{:.1}, {:.1}]</span>",
        i.estimate, i.low, i.high
    )
}

/// Renders the report; `plots` are PNG file names relative to the report.
pub fn render_comparison(comparison: &Comparison, plots: &[String]) -> String {
    let title = escape_html(&comparison.title);
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{title}</title>\n<style>{STYLE}.yes{{font-weight:600;color:#2e7d32}}</style>\n\
         </head>\n<body>\n<h1>{title}</h1>\n\
         <p>Means over problems with 95 % percentile-bootstrap intervals ({} resamples, \
         problems resampled); a pair's difference is taken over the problems both settings \
         finished.</p>\n",
        comparison.bootstrap_resamples
    );
    let metrics = comparison.metrics();
    let mut header = String::from("setting|problems");
    for metric in &metrics {
        header.push('|');
        header.push_str(metric.label());
    }
    let rows = comparison
        .settings
        .iter()
        .map(|s| {
            let mut row = vec![escape_html(&s.name), s.problems.to_string()];
            row.extend(metrics.iter().map(|m| {
                s.metrics
                    .get(m)
                    .map_or("–".to_string(), |interval| shown(*m, interval))
            }));
            row
        })
        .collect();
    table(&mut out, "Settings", &header, rows);
    if !plots.is_empty() {
        out.push_str("<h2>Plots</h2>\n");
        for plot in plots {
            let file = escape_html(plot);
            out.push_str(&format!(
                "<p><img src=\"{file}\" alt=\"{file}\" style=\"max-width:100%\"></p>\n"
            ));
        }
    }
    for metric in PAIR_METRICS {
        let rows: Vec<Vec<String>> = comparison
            .pairs
            .iter()
            .filter(|p| p.metric == metric)
            .map(|p| {
                vec![
                    escape_html(&p.a),
                    escape_html(&p.b),
                    p.problems.to_string(),
                    shown(metric, &p.difference),
                    if p.excludes_zero {
                        "<span class=\"yes\">yes</span>".to_string()
                    } else {
                        "no".to_string()
                    },
                ]
            })
            .collect();
        if !rows.is_empty() {
            table(
                &mut out,
                &format!("Paired differences of {} (b − a, points)", metric.label()),
                "a|b|shared problems|difference|interval excludes 0",
                rows,
            );
        }
    }
    out.push_str("</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::comparison::grid::Setting;
    use crate::comparison::stats::{compare, ProblemValues};

    #[test]
    fn the_report_shows_every_setting_and_escapes_names() {
        let values = |pass: bool| {
            (0..5)
                .map(|i| {
                    let pass = f64::from(u8::from(pass));
                    ProblemValues {
                        problem_id: format!("p{i}"),
                        values: [
                            (Metric::Pass1Mcts, pass),
                            (Metric::PassN, pass),
                            (Metric::Tokens, 10.0),
                        ]
                        .into(),
                    }
                })
                .collect::<Vec<_>>()
        };
        let setting = |name: &str| Setting {
            name: name.into(),
            options: Default::default(),
            varied: Default::default(),
        };
        let c = compare(
            "<t>",
            &[
                (setting("a<b"), values(false)),
                (setting("c"), values(true)),
            ],
        );
        let html = render_comparison(&c, &["pass_by_budget.png".into()]);
        assert!(html.contains("<h1>&lt;t&gt;</h1>"));
        assert!(html.contains("<td>a&lt;b</td>"));
        assert!(html.contains("100.0% <span class=\"metrics\">[100.0, 100.0]</span>"));
        assert!(html.contains("src=\"pass_by_budget.png\""));
        assert!(html.contains("Paired differences of Pass@1(MCTS)"));
        assert!(!html.contains("Paired differences of Pass@1 ("));
        assert!(html.contains("<span class=\"yes\">yes</span>"));
        // Only the metrics some setting has get a column.
        assert!(html.contains("<th>tokens</th>"));
        assert!(!html.contains("wall s") && !html.contains("held-out"));
    }
}

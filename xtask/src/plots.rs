//! PNG plots of a training run's curves, read from its `metrics.jsonl`: one picture per
//! quantity (reward, pass rate, loss, KL, gradient norm, ratio, learning rate, staleness,
//! rollout tokens/s), the x axis the agent's update, one coloured line per agent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use plotters::prelude::*;
use serde_json::Value;

/// Pixel size of every plot.
pub const PLOT_SIZE: (u32, u32) = (800, 480);

/// (file stem, title, where the value sits in a metrics line).
const CURVES: &[(&str, &str, &[&str])] = &[
    (
        "reward",
        "mean reward of the update's samples",
        &["metrics", "mean_reward"],
    ),
    (
        "rollout_pass_rate",
        "rollout pass rate (all tests)",
        &["rollout_pass_rate"],
    ),
    ("loss", "loss", &["metrics", "loss"]),
    ("kl", "k3 KL to the reference", &["metrics", "kl"]),
    (
        "grad_norm",
        "gradient norm (before clipping)",
        &["metrics", "grad_norm"],
    ),
    ("ratio", "mean sequence ratio", &["metrics", "ratio"]),
    ("lr", "learning rate", &["metrics", "lr"]),
    (
        "staleness",
        "mean staleness of samples (updates)",
        &["metrics", "staleness_mean"],
    ),
    (
        "tokens_per_second",
        "rollout tokens/s",
        &["rollout_tokens_per_second"],
    ),
];

/// Per agent, the (step, line) pairs of a metrics file.
type Series = BTreeMap<String, Vec<(f64, Value)>>;

fn read_metrics(path: &Path) -> Result<Series> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut series = Series::new();
    for (i, line) in lines.iter().enumerate() {
        let value: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {
                eprintln!("{}: skipping a torn last line", path.display());
                continue;
            }
            Err(e) => bail!("{}:{}: not JSON: {e}", path.display(), i + 1),
        };
        let agent = value["agent"].as_str().unwrap_or("agent").to_string();
        let step = value["metrics"]["step"].as_f64().unwrap_or(i as f64);
        series.entry(agent).or_default().push((step, value));
    }
    if series.is_empty() {
        bail!("{}: no updates recorded", path.display());
    }
    Ok(series)
}

fn lookup(value: &Value, path: &[&str]) -> Option<f64> {
    path.iter()
        .try_fold(value, |v, key| v.get(key))
        .and_then(Value::as_f64)
        .filter(|v| v.is_finite())
}

/// Writes one PNG per curve into `out_dir` and returns their paths.
pub fn write_training_plots(metrics: &Path, out_dir: &Path) -> Result<Vec<PathBuf>> {
    let series = read_metrics(metrics)?;
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let mut written = Vec::new();
    for (stem, title, path) in CURVES {
        let lines: Vec<(&String, Vec<(f64, f64)>)> = series
            .iter()
            .map(|(agent, points)| {
                let xy = points
                    .iter()
                    .filter_map(|(x, v)| lookup(v, path).map(|y| (*x, y)))
                    .collect();
                (agent, xy)
            })
            .filter(|(_, xy): &(_, Vec<_>)| !xy.is_empty())
            .collect();
        if lines.is_empty() {
            continue;
        }
        let file = out_dir.join(format!("{stem}.png"));
        draw(&file, title, &lines)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("drawing {}", file.display()))?;
        written.push(file);
    }
    Ok(written)
}

fn padded_range(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let lo = values.clone().fold(f64::INFINITY, f64::min);
    let hi = values.fold(f64::NEG_INFINITY, f64::max);
    let pad = ((hi - lo) * 0.08)
        .max(hi.abs().max(lo.abs()) * 0.05)
        .max(1e-9);
    (lo - pad, hi + pad)
}

fn draw(
    file: &Path,
    title: &str,
    lines: &[(&String, Vec<(f64, f64)>)],
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::new(file, PLOT_SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let all = lines.iter().flat_map(|(_, xy)| xy.iter().copied());
    let (x0, x1) = padded_range(all.clone().map(|p| p.0));
    let (y0, y1) = padded_range(all.map(|p| p.1));
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    chart
        .configure_mesh()
        .x_desc("update")
        .label_style(("sans-serif", 14))
        .draw()?;
    for (i, (agent, xy)) in lines.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(xy.iter().copied(), color.stroke_width(2)))?
            .label(agent.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
        chart.draw_series(xy.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(agent: &str, step: usize, reward: f64) -> String {
        format!(
            "{{\"round\":0,\"agent\":\"{agent}\",\"rollout_pass_rate\":0.5,\"rollout_tokens_per_second\":10.0,\
             \"metrics\":{{\"step\":{step},\"loss\":0.1,\"kl\":0.0,\"grad_norm\":1.0,\"ratio\":1.0,\
             \"lr\":1e-6,\"mean_reward\":{reward},\"staleness_mean\":0.5}}}}\n"
        )
    }

    #[test]
    fn plots_every_curve_per_agent() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = dir.path().join("metrics.jsonl");
        let text = [line("a", 0, 0.1), line("b", 0, 0.2), line("a", 1, 0.3)].concat();
        std::fs::write(&metrics, text + "{\"round\":1,\"agent\":\"a\",\"met").unwrap();
        let out = dir.path().join("plots");
        let files = write_training_plots(&metrics, &out).unwrap();
        assert_eq!(files.len(), CURVES.len());
        for file in files {
            let bytes = std::fs::read(&file).unwrap();
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", file.display());
            // IHDR: width and height, big-endian, at bytes 16..24.
            let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
            let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
            assert_eq!((w, h), PLOT_SIZE);
        }
    }

    #[test]
    fn bad_metrics_files_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = dir.path().join("metrics.jsonl");
        std::fs::write(&metrics, line("a", 0, 0.1) + "oops\n" + &line("a", 1, 0.2)).unwrap();
        let err = format!(
            "{:#}",
            write_training_plots(&metrics, dir.path()).unwrap_err()
        );
        assert!(err.contains("metrics.jsonl:2"), "{err}");
        std::fs::write(&metrics, "").unwrap();
        let err = format!(
            "{:#}",
            write_training_plots(&metrics, dir.path()).unwrap_err()
        );
        assert!(err.contains("no updates"), "{err}");
    }
}

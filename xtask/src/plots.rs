//! PNG plots of a training run's curves, read from its `metrics.jsonl`: one picture per
//! quantity (reward, pass rate, loss, KL, gradient norm, ratio, learning rate, staleness,
//! rollout tokens/s), the x axis the agent's optimizer step, one coloured line with point
//! markers per agent and a legend naming them. Text is drawn with a TrueType font found on the
//! system at run time; without one the plots are still drawn, without text.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{anyhow, bail, Context, Result};
use mars2_search::intervals::Interval;
use plotters::prelude::*;
use plotters::style::register_font;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde_json::Value;

/// Pixel size of every plot.
pub const PLOT_SIZE: (u32, u32) = (900, 500);

/// The family name the run-time font is registered under.
const FONT: &str = "sans-serif";

/// Font files tried in order before asking `fc-match`.
const FONT_FILES: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/liberation2/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    "/usr/share/fonts/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "/Library/Fonts/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];

/// Line colours, one per agent in turn (the "tab10" colours).
const COLORS: &[RGBColor] = &[
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// The most tick labels on the x and y axes.
const X_TICKS: usize = 10;
const Y_TICKS: usize = 8;

/// One plotted quantity.
struct Curve {
    /// File stem of its PNG.
    stem: &'static str,
    title: &'static str,
    y_label: &'static str,
    /// Where the value sits in a metrics line.
    key: &'static [&'static str],
}

const CURVES: &[Curve] = &[
    Curve {
        stem: "reward",
        title: "mean reward of the update's samples",
        y_label: "mean reward",
        key: &["metrics", "mean_reward"],
    },
    Curve {
        stem: "rollout_reward",
        title: "mean reward of the round's rollout",
        y_label: "mean reward",
        key: &["rollout_mean_reward"],
    },
    Curve {
        stem: "rollout_pass_rate",
        title: "rollout pass rate (all tests passed)",
        y_label: "pass rate",
        key: &["rollout_pass_rate"],
    },
    Curve {
        stem: "loss",
        title: "loss",
        y_label: "loss",
        key: &["metrics", "loss"],
    },
    Curve {
        stem: "kl",
        title: "KL to the reference policy (k3)",
        y_label: "KL",
        key: &["metrics", "kl"],
    },
    Curve {
        stem: "grad_norm",
        title: "gradient norm (before clipping)",
        y_label: "gradient norm",
        key: &["metrics", "grad_norm"],
    },
    Curve {
        stem: "ratio",
        title: "mean sequence importance ratio",
        y_label: "ratio",
        key: &["metrics", "ratio"],
    },
    Curve {
        stem: "lr",
        title: "learning rate",
        y_label: "learning rate",
        key: &["metrics", "lr"],
    },
    Curve {
        stem: "staleness",
        title: "mean staleness of the update's samples",
        y_label: "staleness (updates)",
        key: &["metrics", "staleness_mean"],
    },
    Curve {
        stem: "tokens_per_second",
        title: "rollout throughput",
        y_label: "tokens/s",
        key: &["rollout_tokens_per_second"],
    },
];

/// Per agent, its metrics lines as (optimizer step, line), in step order.
type Series = BTreeMap<String, Vec<(f64, Value)>>;

/// One agent's points of one curve.
type Line<'a> = (&'a str, Vec<(f64, f64)>);

/// Writes one PNG per curve that has data into `out_dir` and returns their paths.
pub fn write_training_plots(metrics: &Path, out_dir: &Path) -> Result<Vec<PathBuf>> {
    let series = read_metrics(metrics)?;
    std::fs::create_dir_all(out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let series: Vec<(&str, &[(f64, Value)])> = series
        .iter()
        .map(|(agent, points)| (agent.as_str(), points.as_slice()))
        .collect();
    draw_curves(&series, CURVES.iter(), out_dir, "")
}

/// Draws each of `curves` that has data, one line per labelled series, into
/// `out_dir/<prefix><stem>.png`; the paths written.
fn draw_curves<'a>(
    series: &[(&str, &[(f64, Value)])],
    curves: impl Iterator<Item = &'a Curve>,
    out_dir: &Path,
    prefix: &str,
) -> Result<Vec<PathBuf>> {
    let text = font_ready();
    let mut written = Vec::new();
    for curve in curves {
        let lines: Vec<Line> = series
            .iter()
            .map(|&(label, points)| {
                let xy = points
                    .iter()
                    .filter_map(|(x, line)| lookup(line, curve.key).map(|y| (*x, y)))
                    .collect();
                (label, xy)
            })
            .filter(|(_, xy): &Line| !xy.is_empty())
            .collect();
        if lines.is_empty() {
            continue;
        }
        let file = out_dir.join(format!("{prefix}{}.png", curve.stem));
        let labels = (curve.title, "optimizer step", curve.y_label);
        draw(&file, labels, &lines, &[], text)
            .map_err(|e| anyhow!("{e}"))
            .with_context(|| format!("drawing {}", file.display()))?;
        written.push(file);
    }
    Ok(written)
}

/// Curves that compare training runs (`cargo xtask compare` with training settings).
const COMPARED_CURVES: [&str; 2] = ["reward", "rollout_pass_rate"];

/// One training run of a comparison: its legend, its `metrics.jsonl`, and the agent whose
/// curves it shows (as the metrics lines name it).
pub struct ComparedRun {
    pub label: String,
    pub metrics: PathBuf,
    pub agent: String,
}

/// Learning curves of several runs in one picture each (`learning_<curve>.png` in `out_dir`,
/// one line per run; a run without metrics lines, such as one that made no update, is left
/// out with a warning); the file names written.
pub fn write_compared_curves(runs: &[ComparedRun], out_dir: &Path) -> Result<Vec<String>> {
    let mut series = Vec::new();
    for run in runs {
        let points = read_metrics(&run.metrics).and_then(|mut all| {
            all.remove(&run.agent).with_context(|| {
                format!(
                    "{}: no metrics lines of {}",
                    run.metrics.display(),
                    run.agent
                )
            })
        });
        match points {
            Ok(points) => series.push((run.label.as_str(), points)),
            Err(e) => eprintln!("warning: {} has no learning curve: {e:#}", run.label),
        }
    }
    let series: Vec<(&str, &[(f64, Value)])> = series
        .iter()
        .map(|(label, points)| (*label, points.as_slice()))
        .collect();
    let curves = CURVES.iter().filter(|c| COMPARED_CURVES.contains(&c.stem));
    let written = draw_curves(&series, curves, out_dir, "learning_")?;
    Ok(written
        .iter()
        .filter_map(|path| Some(path.file_name()?.to_string_lossy().into_owned()))
        .collect())
}

/// One line of an interval plot: its legend and its points, each `(x, interval)`.
pub type IntervalLine = (String, Vec<(f64, Interval)>);

/// Draws `lines` into `file`, each point with its interval as a vertical bar.
pub fn write_interval_plot(
    file: &Path,
    title: &str,
    x_label: &str,
    y_label: &str,
    lines: &[IntervalLine],
) -> Result<()> {
    let plotted: Vec<Line> = lines
        .iter()
        .map(|(label, points)| {
            let xy = points.iter().map(|(x, i)| (*x, i.estimate)).collect();
            (label.as_str(), xy)
        })
        .collect();
    let bars: Vec<Vec<(f64, f64, f64, f64)>> = lines
        .iter()
        .map(|(_, points)| {
            points
                .iter()
                .map(|(x, i)| (*x, i.low, i.estimate, i.high))
                .collect()
        })
        .collect();
    draw(
        file,
        (title, x_label, y_label),
        &plotted,
        &bars,
        font_ready(),
    )
    .map_err(|e| anyhow!("{e}"))
    .with_context(|| format!("drawing {}", file.display()))
}

/// Reads a metrics file leniently: unknown keys are ignored and missing ones skipped, but a
/// line that is not a JSON object is an error, except an unterminated last line (a run
/// stopped mid-write), which is skipped with a warning.
fn read_metrics(path: &Path) -> Result<Series> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let lines: Vec<(usize, &[u8])> = bytes
        .split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, line)| (i + 1, line))
        .filter(|(_, line)| !line.trim_ascii().is_empty())
        .collect();
    let unterminated = !bytes.ends_with(b"\n");
    let mut series = Series::new();
    for (k, &(number, line)) in lines.iter().enumerate() {
        let value = match serde_json::from_slice::<Value>(line) {
            Ok(value @ Value::Object(_)) => value,
            Ok(_) => bail!("{}:{number}: not a JSON object", path.display()),
            Err(_) if unterminated && k + 1 == lines.len() => {
                eprintln!(
                    "warning: {}:{number}: skipping an unterminated last line",
                    path.display()
                );
                continue;
            }
            Err(e) => bail!("{}:{number}: not JSON: {e}", path.display()),
        };
        let agent = value["agent"].as_str().unwrap_or("agent").to_string();
        let points = series.entry(agent).or_default();
        let step = value["metrics"]["step"]
            .as_f64()
            .filter(|s| s.is_finite())
            .unwrap_or(points.len() as f64);
        points.push((step, value));
    }
    if series.is_empty() {
        bail!("{}: no metrics lines", path.display());
    }
    for points in series.values_mut() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    Ok(series)
}

fn lookup(value: &Value, key: &[&str]) -> Option<f64> {
    key.iter()
        .try_fold(value, |v, k| v.get(k))
        .and_then(Value::as_f64)
        .filter(|v| v.is_finite())
}

/// Registers a system font for text once per process; false (after one warning) if none of
/// the usual font files, nor the one `fc-match` names, can be loaded.
fn font_ready() -> bool {
    static READY: OnceLock<bool> = OnceLock::new();
    *READY.get_or_init(|| {
        let found = font_candidates().into_iter().any(|path| {
            std::fs::read(&path).is_ok_and(|bytes| {
                // The font table keeps `'static` references; this happens once per process.
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                register_font(FONT, FontStyle::Normal, bytes).is_ok()
            })
        });
        if !found {
            eprintln!(
                "warning: no TrueType font found (tried {} and fc-match); plots are drawn \
                 without text",
                FONT_FILES[0]
            );
        }
        found
    })
}

fn font_candidates() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = FONT_FILES
        .iter()
        .map(PathBuf::from)
        .filter(|p| p.is_file())
        .collect();
    let matched = std::process::Command::new("fc-match")
        .args(["--format=%{file}", "sans-serif"])
        .output();
    if let Ok(out) = matched {
        let file = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !file.is_empty() {
            paths.push(PathBuf::from(file));
        }
    }
    paths
}

/// Tick labels for an axis from `lo` to `hi` with at most `ticks` labels: enough decimals to
/// tell neighbours apart, in scientific notation for very small or large magnitudes.
fn tick_format(lo: f64, hi: f64, ticks: usize) -> impl Fn(&f64) -> String {
    let step = ((hi - lo) / ticks as f64).abs().max(f64::MIN_POSITIVE);
    let magnitude = lo.abs().max(hi.abs());
    let scientific = !(1e-3..1e5).contains(&magnitude);
    let decimals = if scientific {
        (magnitude / step).log10().ceil().clamp(1.0, 6.0)
    } else {
        (-step.log10()).ceil().clamp(0.0, 9.0)
    } as usize;
    move |v| {
        // No "-0.0" for a zero that came out of the tick arithmetic as -1e-17.
        let v = if v.abs() < step * 1e-6 { 0.0 } else { *v };
        if scientific {
            format!("{v:.decimals$e}")
        } else {
            format!("{v:.decimals$}")
        }
    }
}

/// The range of `values` with a margin; a single value gets a margin of its own size (or 1).
fn padded_range(values: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let lo = values.clone().fold(f64::INFINITY, f64::min);
    let hi = values.fold(f64::NEG_INFINITY, f64::max);
    let pad = if hi > lo {
        (hi - lo) * 0.06
    } else if hi != 0.0 {
        hi.abs() * 0.1
    } else {
        1.0
    };
    (lo - pad, hi + pad)
}

/// Draws `lines` (title, x and y axis names in `labels`), each point of line `i` with the
/// vertical bar `bars[i]` holds for it (`(x, low, mid, high)`; none where `bars` is shorter).
fn draw(
    file: &Path,
    (title, x_label, y_label): (&str, &str, &str),
    lines: &[Line],
    bars: &[Vec<(f64, f64, f64, f64)>],
    text: bool,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    let root = BitMapBackend::new(file, PLOT_SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let legend_style = (FONT, 15)
        .into_font()
        .color(&BLACK)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let legend_width = if text {
        let mut widest = 0;
        for (agent, _) in lines {
            widest = widest.max(root.estimate_text_size(agent, &legend_style)?.0);
        }
        (widest + 60).clamp(120, PLOT_SIZE.0 / 3)
    } else {
        0
    };
    let (plot_area, legend_area) = root.split_horizontally(PLOT_SIZE.0 - legend_width);

    let all = lines.iter().flat_map(|(_, xy)| xy.iter().copied());
    let bar_ends = bars
        .iter()
        .flatten()
        .flat_map(|&(x, low, _, high)| [(x, low), (x, high)]);
    let (x0, x1) = padded_range(all.clone().map(|p| p.0));
    let (y0, y1) = padded_range(all.clone().chain(bar_ends).map(|p| p.1));
    // Steps are whole numbers: no more x labels than steps, so none fall between them.
    let first = all.clone().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let last = all.map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    let x_ticks = ((last - first) as usize + 1).clamp(2, X_TICKS);
    let mut builder = ChartBuilder::on(&plot_area);
    builder.margin(14);
    if text {
        builder
            .caption(title, (FONT, 22))
            .x_label_area_size(50)
            .y_label_area_size(90);
    }
    let mut chart = builder.build_cartesian_2d(x0..x1, y0..y1)?;
    let x_between = tick_format(x0, x1, x_ticks);
    let x_format = |x: &f64| match x.fract() == 0.0 {
        true => format!("{:.0}", x + 0.0),
        false => x_between(x),
    };
    let y_format = tick_format(y0, y1, Y_TICKS);
    let mut mesh = chart.configure_mesh();
    mesh.light_line_style(RGBColor(235, 235, 235));
    if text {
        mesh.x_desc(x_label)
            .y_desc(y_label)
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 16))
            .x_labels(x_ticks)
            .y_labels(Y_TICKS)
            .x_label_formatter(&x_format)
            .y_label_formatter(&y_format);
    }
    mesh.draw()?;

    for (i, (_, xy)) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart.draw_series(LineSeries::new(xy.iter().copied(), color.stroke_width(2)))?;
        chart.draw_series(xy.iter().map(|&p| Circle::new(p, 4, color.filled())))?;
        if let Some(bars) = bars.get(i) {
            chart.draw_series(bars.iter().map(|&(x, low, mid, high)| {
                ErrorBar::new_vertical(x, low, mid, high, color.filled(), 10)
            }))?;
        }
    }

    if text {
        for (i, (agent, _)) in lines.iter().enumerate() {
            let color = COLORS[i % COLORS.len()];
            let y = 60 + 26 * i as i32;
            legend_area.draw(&PathElement::new(
                vec![(8, y), (36, y)],
                color.stroke_width(2),
            ))?;
            legend_area.draw(&Circle::new((22, y), 4, color.filled()))?;
            legend_area.draw(&Text::new(agent.to_string(), (44, y), &legend_style))?;
        }
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(agent: &str, step: usize, reward: f64) -> String {
        format!(
            "{{\"round\":{step},\"agent\":\"{agent}\",\"weights_version\":{step},\
             \"rollout_pass_rate\":0.5,\"rollout_tokens\":100,\"rollout_tokens_per_second\":10.0,\
             \"metrics\":{{\"step\":{step},\"samples\":8,\"tokens\":100,\"loss\":0.1,\"kl\":0.0,\
             \"ratio\":1.0,\"clipped\":0.0,\"vetoed\":0,\"grad_norm\":1.0,\"lr\":1e-6,\
             \"mean_reward\":{reward},\"mean_advantage\":0.0,\"seconds\":1.5}}}}\n"
        )
    }

    fn assert_png(file: &Path) {
        let bytes = std::fs::read(file).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", file.display());
        // IHDR: width and height, big-endian, at bytes 16..24.
        let w = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
        let h = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!((w, h), PLOT_SIZE, "{}", file.display());
    }

    /// Plots `text` as a metrics file; the directory lives as long as the result is used.
    fn plot(text: &str) -> (tempfile::TempDir, Result<Vec<PathBuf>>) {
        let dir = tempfile::tempdir().unwrap();
        let metrics = dir.path().join("metrics.jsonl");
        std::fs::write(&metrics, text).unwrap();
        let files = write_training_plots(&metrics, &dir.path().join("plots"));
        (dir, files)
    }

    #[test]
    fn plots_two_agents_as_pngs() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = dir.path().join("metrics.jsonl");
        let text: String = (0..4)
            .flat_map(|s| [line("a", s, 0.1 * s as f64), line("b", s, 0.5)])
            .collect();
        std::fs::write(&metrics, text).unwrap();
        let out = dir.path().join("plots");
        let files = write_training_plots(&metrics, &out).unwrap();
        let stems: Vec<_> = files
            .iter()
            .map(|f| f.file_stem().unwrap().to_str().unwrap().to_string())
            .collect();
        for stem in [
            "reward",
            "rollout_pass_rate",
            "loss",
            "kl",
            "grad_norm",
            "ratio",
            "lr",
            "tokens_per_second",
        ] {
            assert!(stems.iter().any(|s| s == stem), "no {stem} in {stems:?}");
        }
        for file in &files {
            assert!(file.starts_with(&out));
            assert_png(file);
        }
    }

    #[test]
    fn one_step_per_agent_still_plots() {
        let (_dir, files) = plot(&(line("a", 0, 0.0) + &line("b", 0, 1.0)));
        let files = files.unwrap();
        assert!(!files.is_empty());
        files.iter().for_each(|f| assert_png(f));
    }

    #[test]
    fn an_unterminated_last_line_is_skipped() {
        let text = line("a", 0, 0.1) + &line("a", 1, 0.2) + "{\"round\":2,\"agent\":\"a\",\"met";
        let (_dir, files) = plot(&text);
        let files = files.unwrap();
        assert!(!files.is_empty());
        files.iter().for_each(|f| assert_png(f));
    }

    #[test]
    fn a_corrupt_line_is_named() {
        let text = line("a", 0, 0.1) + "oops\n" + &line("a", 1, 0.2);
        let err = format!("{:#}", plot(&text).1.unwrap_err());
        assert!(err.contains("metrics.jsonl:2"), "{err}");
        // A terminated last line is not torn: it must parse.
        let text = line("a", 0, 0.1) + "{\"round\":1,\n";
        let err = format!("{:#}", plot(&text).1.unwrap_err());
        assert!(err.contains("metrics.jsonl:2"), "{err}");
    }

    #[test]
    fn an_empty_file_is_an_error() {
        for text in ["", "\n\n", "{\"agent\":\"a\""] {
            let err = format!("{:#}", plot(text).1.unwrap_err());
            assert!(err.contains("no metrics lines"), "{text:?}: {err}");
        }
    }

    #[test]
    fn draws_without_a_font() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("loss.png");
        let lines = [("a", vec![(0.0, 1.0), (1.0, 0.5)]), ("b", vec![(0.0, 2.0)])];
        let labels = (CURVES[0].title, "optimizer step", CURVES[0].y_label);
        draw(&file, labels, &lines, &[], false).unwrap();
        assert_png(&file);
    }

    #[test]
    fn interval_plots_draw_every_line_with_its_bars() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pass.png");
        let at = |estimate: f64| Interval {
            estimate,
            low: estimate - 5.0,
            high: estimate + 5.0,
        };
        let lines = [
            (
                "method=sample".to_string(),
                vec![(1.0, at(10.0)), (8.0, at(20.0))],
            ),
            (
                "method=abmcts".to_string(),
                vec![(1.0, at(12.0)), (8.0, at(30.0))],
            ),
        ];
        write_interval_plot(&file, "Pass@1(MCTS)", "nodes", "%", &lines).unwrap();
        assert_png(&file);
    }
}

//! `mgrpo plot`: reward and dev-accuracy curves of one or several runs in one PNG, so the
//! variants (mgrpo, frozen-sub, shared, single) can be compared at a glance. Hot-swaps show as
//! thin vertical lines in the run's colour, labelled with the role and its new generation.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use mgrpo_actors::run_dir::read_json_lines;
use plotters::prelude::*;
use plotters::style::{FontFamily, register_font};

/// One run's curves, read from its `metrics.jsonl` (and `eval.jsonl`, which also holds the
/// dev accuracy before the first step).
struct Curves {
    label: String,
    reward: Vec<(f64, f64)>,
    dev_accuracy: Vec<(f64, f64)>,
    /// `(step, "sub g2")`: the first step on a role's new generation.
    swaps: Vec<(f64, String)>,
}

/// Where a role's generation changes between consecutive metrics lines.
fn swaps(lines: &[serde_json::Value]) -> Vec<(f64, String)> {
    let mut out = Vec::new();
    for role in ["main", "sub"] {
        let key = format!("{role}_generation");
        let mut last = 0;
        for v in lines {
            let (Some(step), Some(g)) = (v["step"].as_f64(), v[&key].as_u64()) else {
                continue;
            };
            if g != last {
                out.push((step, format!("{role} g{g}")));
                last = g;
            }
        }
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    out
}

fn read_curves(run: &Path) -> Result<Curves> {
    let path = run.join("metrics.jsonl");
    let lines = read_json_lines(&path).with_context(|| "is it a run directory?")?;
    let mut curves = Curves {
        label: run.file_name().map_or_else(
            || run.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        ),
        reward: Vec::new(),
        dev_accuracy: Vec::new(),
        swaps: swaps(&lines),
    };
    for v in lines {
        let Some(step) = v["step"].as_f64() else {
            continue;
        };
        if let Some(r) = v["reward"].as_f64() {
            curves.reward.push((step, r));
        }
        if let Some(a) = v["dev_accuracy"].as_f64() {
            curves.dev_accuracy.push((step, a));
        }
    }
    let evals = run.join("eval.jsonl");
    if evals.exists() {
        let dev: Vec<(f64, f64)> = read_json_lines(&evals)?
            .iter()
            .filter_map(|v| Some((v["step"].as_f64()?, v["report"]["accuracy"].as_f64()?)))
            .collect();
        if !dev.is_empty() {
            curves.dev_accuracy = dev;
        }
    }
    Ok(curves)
}

/// Makes the bundled font the charts' `sans-serif` (no system fonts needed).
pub(crate) fn register_bundled_font() -> Result<()> {
    register_font(
        "sans-serif",
        FontStyle::Normal,
        include_bytes!("../../assets/DejaVuSans.ttf"),
    )
    .map_err(|_| anyhow::anyhow!("could not load the bundled font"))
}

/// A chart of a [0, 1] quantity over steps `0..max_step`, titled, its mesh drawn.
pub(crate) fn step_chart<'a, 'b>(
    area: &'a DrawingArea<BitMapBackend<'b>, plotters::coord::Shift>,
    title: &str,
    max_step: f64,
) -> Result<
    ChartContext<
        'a,
        BitMapBackend<'b>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
> {
    let font = FontFamily::Name("sans-serif");
    let mut chart = ChartBuilder::on(area)
        .caption(title, (font, 22))
        .margin(16)
        .x_label_area_size(36)
        .y_label_area_size(48)
        .build_cartesian_2d(0.0..max_step, 0.0..1.0)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .label_style((font, 14))
        .draw()?;
    Ok(chart)
}

/// Draws `runs` into `out`.
pub fn plot(runs: &[PathBuf], out: &Path) -> Result<()> {
    register_bundled_font()?;
    let curves = runs
        .iter()
        .map(|r| read_curves(r))
        .collect::<Result<Vec<_>>>()?;
    if curves.iter().all(|c| c.reward.is_empty()) {
        bail!("no step metrics in any of the runs");
    }
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let root = BitMapBackend::new(out, (1400, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let (left, right) = root.split_horizontally(700);
    let max_step = curves
        .iter()
        .flat_map(|c| c.reward.iter().chain(&c.dev_accuracy))
        .map(|p| p.0)
        .fold(1.0, f64::max);
    panel(&left, "train reward (mean R_M)", max_step, &curves, |c| {
        &c.reward
    })?;
    panel(&right, "dev accuracy", max_step, &curves, |c| {
        &c.dev_accuracy
    })?;
    root.present()
        .with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    title: &str,
    max_step: f64,
    curves: &[Curves],
    series: impl Fn(&Curves) -> &Vec<(f64, f64)>,
) -> Result<()> {
    let font = FontFamily::Name("sans-serif");
    let mut chart = step_chart(area, title, max_step)?;
    for (i, c) in curves.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points = series(c).clone();
        chart
            .draw_series(LineSeries::new(points.clone(), color.stroke_width(2)))?
            .label(c.label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
        chart.draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, 2, color.filled())),
        )?;
        for (step, label) in &c.swaps {
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(*step, 0.0), (*step, 1.0)],
                color.mix(0.6).stroke_width(1),
            )))?;
            chart.draw_series(std::iter::once(Text::new(
                label.clone(),
                (*step, 0.97),
                (font, 12).into_font().color(&color),
            )))?;
        }
    }
    draw_legend(&mut chart)
}

/// The series' labels, lower right.
pub(crate) fn draw_legend<'a, 'b: 'a>(
    chart: &mut ChartContext<
        'a,
        BitMapBackend<'b>,
        Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
    >,
) -> Result<()> {
    let font = FontFamily::Name("sans-serif");
    chart
        .configure_series_labels()
        .label_font((font, 14))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()?;
    Ok(())
}

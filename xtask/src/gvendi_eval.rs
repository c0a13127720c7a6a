//! G-Vendi of an evaluation run: per problem, the gradient diversity of its distinct programs
//! that passed the hidden tests (problems with fewer than two are skipped), under a proxy
//! model; the run's figure is the mean over the scored problems.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use burn::backend::Autodiff;
use burn::tensor::backend::Backend;
use mars2_models::load_model;
use mars2_rl::gvendi::{g_vendi, GVendiConfig};
use mars2_sandbox::Problem;
use mars2_search::prompts::problem_text;
use mars2_search::records::ProblemRecord;

/// Mean G-Vendi over the problems with two or more distinct correct programs, and how many
/// problems that was (`None` when there were none).
pub fn run_g_vendi<B: Backend>(
    proxy: &Path,
    problems: &[Problem],
    records: &[ProblemRecord],
    device: &B::Device,
) -> Result<Option<(f64, usize)>> {
    let loaded = load_model::<Autodiff<B>>(proxy, device)
        .with_context(|| format!("loading {} as the G-Vendi proxy", proxy.display()))?;
    let tokenizer = loaded
        .tokenizer
        .ok_or_else(|| anyhow!("{}: the proxy has no tokenizer", proxy.display()))?;
    let config = GVendiConfig::default();
    let mut scores = Vec::new();
    for record in records {
        let Some(problem) = problems.iter().find(|p| p.id == record.problem_id) else {
            continue;
        };
        let mut seen = HashSet::new();
        let programs: Vec<&str> = record
            .tree
            .generated()
            .filter(|n| n.passes_hidden())
            .filter_map(|n| n.code.as_deref())
            .filter(|code| seen.insert(code.trim().to_string()))
            .collect();
        if programs.len() < 2 {
            continue;
        }
        let prompt = tokenizer.encode(&problem_text(problem))?;
        let mut samples = Vec::new();
        for code in programs {
            let answer = format!("```python\n{}\n```", code.trim_end());
            samples.push((prompt.clone(), tokenizer.encode(&answer)?));
        }
        let scored = g_vendi(&loaded.model, &samples, &config, device)
            .with_context(|| format!("G-Vendi of {}", record.problem_id))?;
        scores.push(scored.score);
    }
    Ok((!scores.is_empty()).then(|| {
        (
            scores.iter().sum::<f64>() / scores.len() as f64,
            scores.len(),
        )
    }))
}

//! Resolving `--agent` arguments: each names a registered model (fetched on first use) or a
//! checkpoint path, and gets a display name unique within the team.

use std::path::Path;

use anyhow::Result;
use mars2_search::AgentModel;

use crate::fetch_model::resolve_model_arg;

/// Resolves `--agent` arguments (fetching registered models on first use) and gives each
/// a distinct display name.
pub fn resolve_models(args: &[String]) -> Result<Vec<AgentModel>> {
    let mut out: Vec<AgentModel> = Vec::new();
    for arg in args {
        let path = resolve_model_arg(arg)?;
        let base = display_name(arg, &path);
        let mut name = base.clone();
        let mut n = 2;
        while out.iter().any(|m| m.name == name) {
            name = format!("{base}#{n}");
            n += 1;
        }
        out.push(AgentModel { name, path });
    }
    Ok(out)
}

fn display_name(arg: &str, path: &Path) -> String {
    if !arg.contains('/') && !arg.contains('.') {
        return arg.to_string();
    }
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| arg.to_string())
}

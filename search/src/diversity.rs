//! DA@K: how many distinct algorithms are among up to K correct programs of a problem.
//! Programs are clustered by a normalised signature — the shape of their Python syntax tree
//! with every name, attribute, argument name and constant erased and docstrings dropped —
//! computed by Python's own parser inside the sandbox.

use std::collections::HashSet;

use mars2_sandbox::Sandbox;

use crate::error::{Result, SearchError};

/// Reads a JSON list of programs on stdin, prints a JSON list of signatures (`null` for a
/// program that does not parse).
const SIGNATURE_SCRIPT: &str = r#"
import ast, hashlib, json, sys

class Erase(ast.NodeTransformer):
    def visit_Name(self, node):
        return ast.copy_location(ast.Name(id="_", ctx=node.ctx), node)
    def visit_Constant(self, node):
        return ast.copy_location(ast.Constant(value=0), node)
    def visit_Attribute(self, node):
        self.generic_visit(node)
        node.attr = "_"
        return node
    def visit_arg(self, node):
        node.arg = "_"
        node.annotation = None
        return node
    def _body(self, node):
        body = node.body
        if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
        self.generic_visit(node)
        if hasattr(node, "name"):
            node.name = "_"
        return node
    visit_FunctionDef = _body
    visit_AsyncFunctionDef = _body
    visit_ClassDef = _body
    def visit_alias(self, node):
        return node

def signature(code):
    try:
        tree = ast.parse(code)
    except Exception:
        return None
    tree = Erase().visit(tree)
    return hashlib.sha256(ast.dump(tree, annotate_fields=False).encode()).hexdigest()[:16]

print(json.dumps([signature(c) for c in json.load(sys.stdin)]))
"#;

/// The normalised signature of each program (`None` when it does not parse).
pub fn signatures(sandbox: &Sandbox, programs: &[&str]) -> Result<Vec<Option<String>>> {
    if programs.is_empty() {
        return Ok(Vec::new());
    }
    let input = serde_json::to_vec(programs).map_err(|e| SearchError::Generation(e.to_string()))?;
    let out = sandbox.run_script(SIGNATURE_SCRIPT, &input)?;
    let parsed: Vec<Option<String>> = serde_json::from_slice(&out.stdout).map_err(|e| {
        SearchError::Generation(format!(
            "the signature script gave no answer ({e}); stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    })?;
    if parsed.len() != programs.len() {
        return Err(SearchError::Generation(
            "the signature script answered for the wrong number of programs".into(),
        ));
    }
    Ok(parsed)
}

/// Distinct algorithms among the first `k` of `correct` programs; `None` when there are none.
pub fn distinct_algorithms(sandbox: &Sandbox, correct: &[&str], k: usize) -> Result<Option<usize>> {
    let chosen: Vec<&str> = correct.iter().copied().take(k).collect();
    if chosen.is_empty() {
        return Ok(None);
    }
    let distinct: HashSet<Option<String>> = signatures(sandbox, &chosen)?.into_iter().collect();
    Ok(Some(distinct.len()))
}

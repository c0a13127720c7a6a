//! Keeping only a program's definitions: its imports, functions, classes and top-level
//! assignments, without the examples, prints and self-made asserts a model adds after
//! them. This is the sanitizing step of EvalPlus's protocol for function-completion
//! benchmarks (HumanEval, MBPP), where the tests call the entry point themselves; a program
//! judged on standard input must keep its top-level code, so callers apply it only to
//! problems with an entry point. Python's own parser decides what a statement is.

use crate::error::SandboxError;
use crate::sandbox::Sandbox;

const DEFINITIONS_SCRIPT: &str = r#"
import ast, json, sys
source = json.loads(sys.stdin.buffer.read())
KEEP = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
        ast.Assign, ast.AnnAssign)
try:
    module = ast.parse(source)
except BaseException:
    sys.stdout.write(json.dumps(source))
    sys.exit(0)
lines = source.splitlines()
kept = []
for node in module.body:
    if isinstance(node, KEEP):
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
        kept.append("\n".join(lines[first - 1:node.end_lineno]))
sys.stdout.write(json.dumps("\n".join(kept) + "\n" if kept else source))
"#;

impl Sandbox {
    /// `code` without its top-level statements other than imports, function and class
    /// definitions and assignments. Code that does not parse, or that defines nothing, is
    /// returned as it is.
    pub fn definitions_only(&self, code: &str) -> Result<String, SandboxError> {
        let input = serde_json::to_vec(code).map_err(|e| {
            SandboxError::io("encode the program", std::io::Error::other(e.to_string()))
        })?;
        let out = self.run_script(DEFINITIONS_SCRIPT, &input)?;
        serde_json::from_slice(&out.stdout).map_err(|e| {
            SandboxError::Probe(format!(
                "keeping the definitions gave no answer ({e}); stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        })
    }
}

//! The one-page HTML report of an evaluation run (`report.html`): the run settings, the
//! summary metrics, the per-agent and agent-pair (AEC) tables, and every problem's tree as
//! nested lists whose nodes open on click to show their code, failing test and answer.
//!
//! The page is self-contained: inline CSS, no scripts, no external resources. Everything
//! that comes from data is HTML-escaped.

use mars2_sandbox::VerdictKind;

use crate::metrics::Summary;
use crate::records::ProblemRecord;
use crate::tree::{Judgement, Node, NodeId, Tree};

/// Characters of a model's answer shown under a node.
const ANSWER_CHARS: usize = 2000;

/// Shown for a value that is unknown.
const NONE: &str = "–";

pub(crate) const STYLE: &str = "
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:78em;padding:0 1em}
table{border-collapse:collapse;margin:.4em 0 1.2em}
th,td{border:1px solid #ccc;padding:.2em .6em;text-align:left}
section{border-top:2px solid #ddd;margin-top:1.5em}
.metrics{color:#555}
.tree,.tree ul{list-style:none;margin:0;padding-left:.6em}
.tree li{position:relative;padding-left:1em}
.tree li::before{content:'';position:absolute;left:0;top:0;height:100%;border-left:1px solid #bbb}
.tree li::after{content:'';position:absolute;left:0;top:.75em;width:.8em;border-top:1px solid #bbb}
.tree li:last-child::before{height:.75em}
summary{cursor:pointer;white-space:nowrap}
.v{font-weight:600;padding:0 .3em;border-radius:3px;color:#fff}
.ok{background:#2e7d32}.fail{background:#c62828}.limit{background:#ef6c00}
.compile{background:#757575}.sandbox{background:#6a1b9a}.none{background:#bbb}
.star{color:#f9a825}
pre{background:#f6f6f6;border:1px solid #e0e0e0;padding:.5em;overflow:auto;max-height:30em}
";

/// What the report shows.
pub struct ReportInput<'a> {
    /// Heading of the page, e.g. "humaneval · tplus · budget 8".
    pub title: &'a str,
    /// The run settings, shown as a key/value table.
    pub settings: &'a serde_json::Value,
    pub summary: &'a Summary,
    /// Agent names by index (a node's `agent` indexes this).
    pub agents: &'a [String],
    pub records: &'a [ProblemRecord],
}

/// Renders the whole report as one HTML page.
pub fn render_report(input: &ReportInput<'_>) -> String {
    let title = escape_html(input.title);
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{title}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{title}</h1>\n"
    );
    render_settings(&mut out, input.settings);
    render_summary(&mut out, input.summary);
    for (index, record) in input.records.iter().enumerate() {
        render_problem(&mut out, index, record, input.agents);
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// Escapes the five characters that matter in HTML text and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// A rate as a percentage with one decimal.
fn percent(rate: Option<f64>) -> String {
    rate.map_or(NONE.to_string(), |r| format!("{:.1}%", r * 100.0))
}

fn check(passed: bool) -> &'static str {
    if passed {
        "✓"
    } else {
        "✗"
    }
}

/// A table under a heading; `header` holds the column names separated by `|` (empty for
/// none). Cells are already HTML.
pub(crate) fn table(out: &mut String, heading: &str, header: &str, rows: Vec<Vec<String>>) {
    out.push_str(&format!("<h2>{heading}</h2>\n<table>\n"));
    if !header.is_empty() {
        let cells: String = header.split('|').map(|h| format!("<th>{h}</th>")).collect();
        out.push_str(&format!("<tr>{cells}</tr>\n"));
    }
    for row in rows {
        let cells: String = row.iter().map(|c| format!("<td>{c}</td>")).collect();
        out.push_str(&format!("<tr>{cells}</tr>\n"));
    }
    out.push_str("</table>\n");
}

fn render_settings(out: &mut String, settings: &serde_json::Value) {
    let show = |value: &serde_json::Value| match value {
        serde_json::Value::String(s) => escape_html(s),
        other => escape_html(&other.to_string()),
    };
    let rows = match settings.as_object() {
        Some(map) => map
            .iter()
            .map(|(k, v)| vec![escape_html(k), show(v)])
            .collect(),
        None => vec![vec![show(settings)]],
    };
    table(out, "Settings", "", rows);
}

fn render_summary(out: &mut String, s: &Summary) {
    let lines = [
        ("problems", s.problems.to_string()),
        ("pass@1", percent(s.pass1)),
        ("pass@1 (MCTS)", percent(Some(s.pass1_mcts))),
        ("pass@N", percent(Some(s.pass_n))),
        ("AEC", percent(s.aec)),
        ("DA@K", s.da_k.map_or(NONE.into(), |d| format!("{d:.2}"))),
        ("nodes", s.nodes.to_string()),
        ("mean depth", format!("{:.2}", s.mean_depth)),
        ("tokens generated", s.tokens_generated.to_string()),
        ("wall seconds", format!("{:.1}", s.wall_seconds)),
        ("sandbox failures", s.sandbox_failures.to_string()),
    ];
    let rows = lines.map(|(name, value)| vec![name.to_string(), value]);
    table(out, "Summary", "", rows.into());

    let rows = s.per_agent.iter().map(|a| {
        let mut row = vec![escape_html(&a.name), a.nodes.to_string()];
        row.extend([a.guide_pass_rate, a.hidden_pass_rate, a.pass1].map(percent));
        row.push(a.tokens_generated.to_string());
        row
    });
    let header = "agent|nodes|guide pass|hidden pass|pass@1|tokens";
    table(out, "Agents", header, rows.collect());

    let rows = s.aec_pairs.iter().map(|p| {
        let (parent, child) = (escape_html(&p.parent_agent), escape_html(&p.child_agent));
        let mut row = vec![format!("{parent} → {child}")];
        row.extend([p.attempts, p.fixed].map(|n| n.to_string()));
        row.push(percent(p.rate));
        row
    });
    let header = "parent agent → child agent|attempts|fixed|rate";
    table(out, "Error correction (AEC)", header, rows.collect());
}

fn render_problem(out: &mut String, index: usize, record: &ProblemRecord, agents: &[String]) {
    let m = &record.metrics;
    let mut line = format!(
        "pass@1 (MCTS) {} · pass@N {} · {} nodes · depth {}",
        check(m.pass1_mcts),
        check(m.pass_n),
        m.nodes,
        m.max_depth
    );
    if let Some(pass1) = m.pass1 {
        line.push_str(&format!(" · pass@1 {}", percent(Some(pass1))));
    }
    line.push_str(&format!(" · {:.1} s", record.wall_seconds));
    let id = escape_html(&record.problem_id);
    out.push_str(&format!(
        "<section id=\"problem-{index}\">\n<h3>{id}</h3>\n<p class=\"metrics\">{line}</p>\n"
    ));
    render_tree(out, &record.tree, m.picked, agents);
    out.push_str("</section>\n");
}

/// Draws the tree as nested lists, depth first with an explicit stack, so chains of any
/// depth render without recursion.
fn render_tree(out: &mut String, tree: &Tree, picked: Option<NodeId>, agents: &[String]) {
    enum Step {
        Open(NodeId),
        CloseList,
    }
    out.push_str("<ul class=\"tree\">\n");
    let mut stack = vec![Step::Open(Tree::ROOT)];
    while let Some(step) = stack.pop() {
        let Step::Open(id) = step else {
            out.push_str("</ul>\n</li>\n");
            continue;
        };
        let Some(node) = tree.nodes.get(id) else {
            continue;
        };
        out.push_str(&format!("<li data-node=\"{id}\">"));
        if node.is_root() {
            out.push_str("<strong>problem</strong>");
        } else {
            render_node(out, node, picked == Some(id), agents);
        }
        if node.children.is_empty() {
            out.push_str("</li>\n");
        } else {
            out.push_str("\n<ul>\n");
            stack.push(Step::CloseList);
            stack.extend(node.children.iter().rev().map(|&c| Step::Open(c)));
        }
    }
    out.push_str("</ul>\n");
}

/// CSS class and label of a verdict.
fn verdict_badge(judgement: Option<&Judgement>) -> (&'static str, String) {
    let Some(j) = judgement else {
        return ("none", "not judged".to_string());
    };
    let class = match j.kind {
        VerdictKind::Accepted => "ok",
        VerdictKind::WrongAnswer | VerdictKind::RuntimeError => "fail",
        VerdictKind::TimeLimit | VerdictKind::MemoryLimit => "limit",
        VerdictKind::CompileError => "compile",
        VerdictKind::SandboxFailure => "sandbox",
    };
    (class, format!("{} {}/{}", j.kind, j.passed, j.total))
}

/// One node: its summary line, and on click its code, failing tests and answer.
fn render_node(out: &mut String, node: &Node, picked: bool, agents: &[String]) {
    let agent = match node.agent {
        Some(a) => agents
            .get(a)
            .cloned()
            .unwrap_or_else(|| format!("agent {a}")),
        None => NONE.to_string(),
    };
    let (class, verdict) = verdict_badge(node.guide.as_ref());
    let hidden = match &node.hidden {
        Some(h) if h.kind == VerdictKind::SandboxFailure => " · hidden ?",
        Some(h) if h.accepted() => " · hidden ✓",
        Some(_) => " · hidden ✗",
        None => "",
    };
    let star = if picked {
        " <span class=\"star\">★</span>"
    } else {
        ""
    };
    out.push_str(&format!(
        "<details><summary>#{} · {} · d{} · <span class=\"v {class}\">{verdict}</span>\
         {hidden}{star}</summary>\n",
        node.id,
        escape_html(&agent),
        node.depth
    ));
    let code = node.code.as_deref().unwrap_or("(no program)");
    out.push_str(&format!("<pre><code>{}</code></pre>\n", escape_html(code)));
    for (label, judgement) in [("guide", &node.guide), ("hidden", &node.hidden)] {
        if let Some(j) = judgement {
            render_failure(out, label, j);
        }
    }
    if let Some(generation) = &node.generation {
        let shown: String = generation.text.chars().take(ANSWER_CHARS).collect();
        let cut = if shown.len() < generation.text.len() {
            "…"
        } else {
            ""
        };
        out.push_str(&format!(
            "<p>answer ({} tokens, {}):</p>\n<pre>{}{cut}</pre>\n",
            generation.response_len,
            escape_html(&generation.finish_reason),
            escape_html(&shown)
        ));
    }
    out.push_str("</details>");
}

/// The failing test and message of one verdict, when there are any.
fn render_failure(out: &mut String, label: &str, j: &Judgement) {
    if let Some(f) = &j.failure {
        out.push_str(&format!("<p>{label}: failing test {}</p>\n", f.index));
        let parts = [
            ("input", Some(&f.input)),
            ("expected", Some(&f.expected)),
            ("actual", f.actual.as_ref()),
            ("error", f.error.as_ref()),
        ];
        for (name, text) in parts {
            if let Some(text) = text.filter(|t| !t.is_empty()) {
                out.push_str(&format!("<p>{name}:</p><pre>{}</pre>\n", escape_html(text)));
            }
        }
    }
    if let Some(message) = &j.message {
        let message = escape_html(message);
        out.push_str(&format!("<p>{label} message:</p><pre>{message}</pre>\n"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{problem_metrics, summarize};
    use crate::runner::ProblemRun;
    use crate::tree::Generation;

    fn node(agent: usize, kind: VerdictKind, code: Option<&str>) -> Node {
        let guide = Judgement {
            kind,
            passed: (kind == VerdictKind::Accepted) as usize * 3,
            total: 3,
            failure: None,
            message: None,
        };
        Node {
            code: code.map(str::to_string),
            hidden: Some(guide.clone()),
            guide: Some(guide),
            ..Tree::blank_node(agent)
        }
    }

    fn report(tree: Tree, agents: &[String]) -> String {
        let run = ProblemRun {
            problem_id: "p<1>".into(),
            tree,
            samples: vec![],
            wall_seconds: 1.0,
        };
        let metrics = problem_metrics(&run, agents.len(), None);
        let summary = summarize(std::slice::from_ref(&metrics), agents, 1.0);
        let (problem_id, tree) = (run.problem_id, run.tree);
        let records = [ProblemRecord {
            problem_id,
            tree,
            samples: vec![],
            metrics,
            wall_seconds: 1.0,
        }];
        let settings = serde_json::json!({"method": "tplus", "budget": 8});
        let title = "demo · tplus";
        render_report(&ReportInput {
            title,
            settings: &settings,
            summary: &summary,
            agents,
            records: &records,
        })
    }

    /// How many lists enclose the item of node `id`.
    fn list_depth(html: &str, id: NodeId) -> usize {
        let at = html
            .find(&format!("<li data-node=\"{id}\">"))
            .expect("node is drawn");
        html[..at].matches("<ul").count() - html[..at].matches("</ul>").count()
    }

    #[test]
    fn nodes_agents_star_and_nesting_are_drawn() {
        let agents = vec!["alice".to_string(), "bob".to_string()];
        let mut tree = Tree::new();
        let a = tree.add_child(
            Tree::ROOT,
            node(0, VerdictKind::WrongAnswer, Some("print(1)")),
        );
        let mut fix = node(1, VerdictKind::Accepted, Some("print(2)"));
        fix.generation = Some(Generation {
            text: "y".repeat(3000),
            ..Generation::default()
        });
        let b = tree.add_child(a, fix);
        let c = tree.add_child(Tree::ROOT, node(1, VerdictKind::CompileError, None));
        let html = report(tree, &agents);

        assert!(html.contains("#1 · alice · d1 · <span class=\"v fail\">WrongAnswer 0/3</span>"));
        assert!(html.contains("#2 · bob · d2 · <span class=\"v ok\">Accepted 3/3</span>"));
        assert!(html.contains("#3 · bob · d1 · <span class=\"v compile\">"));
        assert!(html.contains("(no program)") && html.contains("print(2)"));
        assert!(html.contains(&format!("<pre>{}…</pre>", "y".repeat(2000))));
        // The accepted refinement is the picked answer and the only starred node.
        assert_eq!(html.matches("★").count(), 1);
        let star = html.find("★").expect("star");
        assert!(html.find("#2 · ").expect("b") < star && star < html.find("#3 · ").expect("c"));
        // Children sit one list deeper than their parent, siblings at the same depth.
        let depths = [Tree::ROOT, a, b, c].map(|id| list_depth(&html, id));
        assert_eq!(depths, [1, 2, 3, 2]);
        assert_eq!(html.matches("<ul").count(), html.matches("</ul>").count());
        assert!(html.contains("<td>pass@N</td><td>100.0%</td>"));
        assert!(html.contains("<td>DA@K</td><td>–</td>"));
        assert!(html.contains("<td>alice → bob</td><td>1</td><td>1</td><td>100.0%</td>"));
        assert!(html.contains("<td>budget</td><td>8</td>"));
    }

    #[test]
    fn data_is_escaped() {
        let agents = vec!["<i>eve</i>".to_string()];
        let mut tree = Tree::new();
        let code = "x = '<script>alert(\"&\")</script>'";
        let mut bad = node(0, VerdictKind::RuntimeError, Some(code));
        if let Some(guide) = bad.guide.as_mut() {
            guide.failure = Some(mars2_sandbox::FailedTest {
                index: 0,
                input: "<script>".into(),
                expected: "1".into(),
                actual: None,
                error: Some("boom <b>".into()),
            });
        }
        tree.add_child(Tree::ROOT, bad);
        let html = report(tree, &agents);
        assert!(!html.contains("<script"));
        assert!(!html.contains("<i>") && !html.contains("<b>") && !html.contains("p<1>"));
        assert!(html.contains("&#39;&lt;script&gt;alert(&quot;&amp;&quot;)&lt;/script&gt;&#39;"));
        assert!(html.contains("&lt;i&gt;eve&lt;/i&gt;") && html.contains("<h3>p&lt;1&gt;</h3>"));
        assert!(html.contains("<p>error:</p><pre>boom &lt;b&gt;</pre>"));
    }

    #[test]
    fn deep_chains_render() {
        let agents = vec!["solo".to_string()];
        let mut tree = Tree::new();
        let mut parent = Tree::ROOT;
        for _ in 0..40 {
            parent = tree.add_child(parent, node(0, VerdictKind::TimeLimit, None));
        }
        let html = report(tree, &agents);
        assert_eq!(list_depth(&html, 40), 41);
        assert!(html.contains("#40 · solo · d40 · <span class=\"v limit\">TimeLimit 0/3</span>"));
        assert_eq!(html.matches("</ul>").count(), 41);
    }

    #[test]
    fn rates_and_unknown_values() {
        assert_eq!(percent(Some(0.1234)), "12.3%");
        assert_eq!(percent(None), "–");
        assert_eq!(escape_html("a&b"), "a&amp;b");
    }
}

//! The conversations that ask a model for a node: a fresh solution under the root, a
//! refinement under any other node (parent or path context), and the verdict text a
//! refinement shows (plain, or the error feedback of T+).

use mars2_models::ChatMessage;
use mars2_sandbox::{truncate, Dataset, Problem, TestCase, VerdictKind};

use crate::config::{AgentSpec, ContextMode, FeedbackMode, Role};
use crate::tree::{Judgement, NodeId, Tree};

/// The end of a fenced code block on its own line: answers that stop at it end after their
/// first program (the opening fence carries a language name, so it does not match).
pub const CLOSING_FENCE: &str = "\n```\n";

/// Longest input, expected or actual output quoted in error feedback, in characters.
pub const FEEDBACK_CHARS: usize = 600;

pub const SYSTEM_ANY: &str =
    "You are an expert Python programmer. You solve programming problems with correct, \
efficient Python 3 programs and you fix programs that fail their tests.";
pub const SYSTEM_GENERATOR: &str =
    "You are an expert Python programmer. You solve programming problems with correct, \
efficient Python 3 programs.";
pub const SYSTEM_REFINER: &str =
    "You are an expert Python programmer who debugs code. You read a program and its \
test results, find the mistake and write a corrected program.";

const ANSWER_FORMAT: &str =
    "Answer with the complete Python program in a single ```python code block.";

/// The system prompt of `agent`.
pub fn system_prompt(agent: &AgentSpec) -> &str {
    if let Some(custom) = &agent.system_prompt {
        return custom;
    }
    match agent.role {
        Role::Any => SYSTEM_ANY,
        Role::Generator => SYSTEM_GENERATOR,
        Role::Refiner => SYSTEM_REFINER,
    }
}

/// The problem as a model sees it: the statement, the starter code, and (MBPP) the public
/// assert the program must satisfy.
pub fn problem_text(problem: &Problem) -> String {
    let mut text = String::new();
    let statement = problem.statement.trim_end();
    let starter = problem.starter_code.trim_end();
    if problem.dataset == Dataset::HumanEval || (!starter.is_empty() && statement == starter) {
        text.push_str("Complete the following Python function.\n\n```python\n");
        text.push_str(if starter.is_empty() {
            statement
        } else {
            starter
        });
        text.push_str("\n```\n");
    } else {
        text.push_str(statement);
        text.push('\n');
        if !starter.is_empty() {
            text.push_str("\nStart from this code:\n```python\n");
            text.push_str(starter);
            text.push_str("\n```\n");
        }
    }
    if problem.dataset == Dataset::Mbpp {
        let asserts: Vec<&str> = public_asserts(problem).collect();
        if !asserts.is_empty() {
            text.push_str("\nYour code should pass this test:\n");
            for a in asserts {
                text.push_str(a);
                text.push('\n');
            }
        }
    }
    text
}

/// The public tests of `problem` that are asserts, trimmed.
fn public_asserts(problem: &Problem) -> impl Iterator<Item = &str> {
    problem.public_tests.iter().filter_map(|t| match t {
        TestCase::Assert { assertion, .. } => Some(assertion.trim()),
        _ => None,
    })
}

/// EvalPlus's instruction to instruct models.
pub const EVALPLUS_INSTRUCTION: &str = "Please provide a self-contained Python script that \
solves the following problem in a markdown code block:";
/// The start of the answer EvalPlus writes for the model, ending in an open fence.
pub const EVALPLUS_RESPONSE_PREFIX: &str = "Below is a Python script with a self-contained \
function that solves the problem and passes corresponding tests:\n```python\n";

/// The task as EvalPlus shows it: HumanEval's prompt as it is; an MBPP statement and its
/// first test inside a docstring.
fn evalplus_task(problem: &Problem) -> String {
    if problem.dataset == Dataset::Mbpp {
        let first_assert = public_asserts(problem).next();
        let mut task = format!("\"\"\"\n{}\n", problem.statement.trim());
        if let Some(assertion) = first_assert {
            task.push_str(assertion);
            task.push('\n');
        }
        task.push_str("\"\"\"\n");
        return task;
    }
    let starter = problem.starter_code.trim_end();
    if starter.is_empty() {
        problem.statement.clone()
    } else {
        starter.to_string()
    }
}

/// The conversation and the answer's forced start that ask for a fresh solution the way
/// EvalPlus asks instruct models (see [`crate::PromptStyle::EvalPlus`]).
pub fn evalplus_request(problem: &Problem) -> (Vec<ChatMessage>, &'static str) {
    let user = format!(
        "{EVALPLUS_INSTRUCTION}\n```\n{}\n```\n",
        evalplus_task(problem).trim()
    );
    (vec![ChatMessage::user(user)], EVALPLUS_RESPONSE_PREFIX)
}

/// The system message of Qwen2.5-Coder's evaluation of its instruct models.
pub const QWEN_CODER_SYSTEM: &str =
    "You are an intelligent programming assistant to produce Python algorithmic solutions";
/// The start of the answer in Qwen2.5-Coder's evaluation: an open fence.
pub const QWEN_CODER_RESPONSE_PREFIX: &str = "```python\n";

/// The conversation and the answer's forced start that ask for a fresh solution the way
/// Qwen2.5-Coder's evaluation asks its instruct models (see [`crate::PromptStyle::QwenCoder`]).
pub fn qwen_coder_request(problem: &Problem) -> (Vec<ChatMessage>, &'static str) {
    let user = format!(
        "Can you complete the following Python function?\n```python\n{}\n```",
        evalplus_task(problem).trim()
    );
    (
        vec![
            ChatMessage::system(QWEN_CODER_SYSTEM),
            ChatMessage::user(user),
        ],
        QWEN_CODER_RESPONSE_PREFIX,
    )
}

/// The request for a fresh solution.
fn fresh_request(problem: &Problem) -> String {
    format!("{}\n{ANSWER_FORMAT}", problem_text(problem))
}

/// What a refinement prompt says of a verdict.
pub fn verdict_text(judgement: Option<&Judgement>, mode: FeedbackMode) -> String {
    let Some(j) = judgement else {
        return "The program was not judged.".to_string();
    };
    if j.accepted() {
        return format!("The program passed all {} tests.", j.total);
    }
    let headline = match j.kind {
        VerdictKind::CompileError => "The answer has no program that compiles.".to_string(),
        VerdictKind::SandboxFailure => "The tests could not be run.".to_string(),
        _ => format!(
            "The program failed: it passed {} of {} tests ({}).",
            j.passed,
            j.total,
            describe_kind(j.kind)
        ),
    };
    if mode == FeedbackMode::Plain {
        return headline;
    }
    let mut text = headline;
    if let Some(f) = &j.failure {
        text.push_str("\n\nFirst failing test:\n");
        text.push_str(&format!("Input:\n{}\n", truncate(&f.input, FEEDBACK_CHARS)));
        if !f.expected.is_empty() {
            text.push_str(&format!(
                "Expected output:\n{}\n",
                truncate(&f.expected, FEEDBACK_CHARS)
            ));
        }
        if let Some(actual) = &f.actual {
            text.push_str(&format!(
                "Actual output:\n{}\n",
                truncate(actual, FEEDBACK_CHARS)
            ));
        }
        if let Some(error) = &f.error {
            text.push_str(&format!("Error:\n{}\n", truncate(error, FEEDBACK_CHARS)));
        }
    } else if let Some(message) = &j.message {
        text.push_str(&format!(
            "\n\nDetails:\n{}\n",
            truncate(message, FEEDBACK_CHARS)
        ));
    }
    text
}

fn describe_kind(kind: VerdictKind) -> &'static str {
    match kind {
        VerdictKind::WrongAnswer => "wrong answer",
        VerdictKind::RuntimeError => "runtime error",
        VerdictKind::TimeLimit => "time limit exceeded",
        VerdictKind::MemoryLimit => "memory limit exceeded",
        VerdictKind::CompileError => "compile error",
        VerdictKind::SandboxFailure => "not judged",
        VerdictKind::Accepted => "accepted",
    }
}

fn code_block(code: Option<&str>) -> String {
    match code {
        Some(code) => format!("```python\n{}\n```", code.trim_end()),
        None => "(no program)".to_string(),
    }
}

/// The conversation that asks `agent` for a child of `parent`.
pub fn build_messages(
    problem: &Problem,
    tree: &Tree,
    parent: NodeId,
    agent: &AgentSpec,
    context: ContextMode,
    feedback: FeedbackMode,
) -> Vec<ChatMessage> {
    let mut messages = vec![ChatMessage::system(system_prompt(agent))];
    if parent == Tree::ROOT {
        messages.push(ChatMessage::user(fresh_request(problem)));
        return messages;
    }
    match context {
        ContextMode::Parent => {
            let node = tree.node(parent);
            messages.push(ChatMessage::user(format!(
                "{}\nHere is a previous attempt:\n{}\n\n{}\n\nWrite a corrected, complete program. {ANSWER_FORMAT}",
                problem_text(problem),
                code_block(node.code.as_deref()),
                verdict_text(node.guide.as_ref(), feedback),
            )));
        }
        ContextMode::Path => {
            messages.push(ChatMessage::user(fresh_request(problem)));
            for id in tree.path_to(parent) {
                let node = tree.node(id);
                let answer = node
                    .generation
                    .as_ref()
                    .map(|g| g.text.clone())
                    .unwrap_or_default();
                messages.push(ChatMessage::assistant(answer));
                messages.push(ChatMessage::user(format!(
                    "{}\n\nWrite a corrected, complete program. {ANSWER_FORMAT}",
                    verdict_text(node.guide.as_ref(), feedback)
                )));
            }
        }
    }
    messages
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Generation;
    use mars2_sandbox::FailedTest;

    fn problem() -> Problem {
        Problem {
            id: "Mbpp/1".into(),
            dataset: Dataset::Mbpp,
            title: None,
            statement: "Write a function add(a, b) that returns a + b.".into(),
            starter_code: String::new(),
            entry_point: Some("add".into()),
            public_tests: vec![TestCase::Assert {
                setup: String::new(),
                assertion: "assert add(1, 2) == 3".into(),
            }],
            hidden_tests: vec![],
            reference_solution: None,
            platform: None,
            difficulty: None,
            split: None,
        }
    }

    fn failing() -> Judgement {
        Judgement {
            kind: VerdictKind::WrongAnswer,
            passed: 0,
            total: 1,
            failure: Some(FailedTest {
                index: 0,
                input: "assert add(1, 2) == 3".into(),
                expected: String::new(),
                actual: None,
                error: Some("AssertionError".into()),
            }),
            message: None,
        }
    }

    fn tree_with_chain() -> Tree {
        let mut tree = Tree::new();
        for parent in [0, 1] {
            let mut n = Tree::blank_node(0);
            n.code = Some(format!("def add(a, b):\n    return a - b  # {parent}"));
            n.guide = Some(failing());
            n.generation = Some(Generation {
                text: format!("answer {parent}"),
                ..Generation::default()
            });
            tree.add_child(parent, n);
        }
        tree
    }

    #[test]
    fn evalplus_request_fences_the_task_and_starts_the_answer() {
        let humaneval = Problem {
            id: "HumanEval/0".into(),
            dataset: Dataset::HumanEval,
            starter_code: "def add(a, b):\n    \"\"\"Sum.\"\"\"\n".into(),
            statement: "def add(a, b):\n    \"\"\"Sum.\"\"\"\n".into(),
            ..problem()
        };
        let (messages, prefix) = evalplus_request(&humaneval);
        assert_eq!(messages.len(), 1);
        assert_eq!(
            messages[0].content,
            format!("{EVALPLUS_INSTRUCTION}\n```\ndef add(a, b):\n    \"\"\"Sum.\"\"\"\n```\n")
        );
        assert!(prefix.ends_with("tests:\n```python\n"));
        let (messages, _) = evalplus_request(&problem());
        assert_eq!(
            messages[0].content,
            format!(
                "{EVALPLUS_INSTRUCTION}\n```\n\"\"\"\nWrite a function add(a, b) that returns a + b.\nassert add(1, 2) == 3\n\"\"\"\n```\n"
            )
        );
    }

    #[test]
    fn qwen_coder_request_has_its_system_message_and_an_open_fence() {
        let (messages, prefix) = qwen_coder_request(&problem());
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].content, QWEN_CODER_SYSTEM);
        assert_eq!(
            messages[1].content,
            "Can you complete the following Python function?\n```python\n\"\"\"\nWrite a function add(a, b) that returns a + b.\nassert add(1, 2) == 3\n\"\"\"\n```"
        );
        assert_eq!(prefix, "```python\n");
    }

    #[test]
    fn fresh_prompt_shows_the_statement_and_the_public_assert() {
        let agent = AgentSpec::new("a", 0);
        let m = build_messages(
            &problem(),
            &Tree::new(),
            0,
            &agent,
            ContextMode::Parent,
            FeedbackMode::Plain,
        );
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].role, "system");
        assert!(m[1].content.contains("returns a + b"));
        assert!(m[1].content.contains("assert add(1, 2) == 3"));
        assert!(m[1].content.contains("```python"));
    }

    #[test]
    fn parent_context_carries_code_and_plain_or_detailed_verdict() {
        let agent = AgentSpec::new("a", 0);
        let tree = tree_with_chain();
        let plain = build_messages(
            &problem(),
            &tree,
            2,
            &agent,
            ContextMode::Parent,
            FeedbackMode::Plain,
        );
        assert_eq!(plain.len(), 2);
        assert!(plain[1].content.contains("return a - b  # 1"));
        assert!(plain[1]
            .content
            .contains("passed 0 of 1 tests (wrong answer)"));
        assert!(!plain[1].content.contains("AssertionError"));
        let errors = build_messages(
            &problem(),
            &tree,
            2,
            &agent,
            ContextMode::Parent,
            FeedbackMode::Errors,
        );
        assert!(errors[1].content.contains("First failing test"));
        assert!(errors[1].content.contains("AssertionError"));
    }

    #[test]
    fn path_context_is_the_conversation_along_the_path() {
        let agent = AgentSpec::new("a", 0);
        let tree = tree_with_chain();
        let m = build_messages(
            &problem(),
            &tree,
            2,
            &agent,
            ContextMode::Path,
            FeedbackMode::Plain,
        );
        let roles: Vec<&str> = m.iter().map(|m| m.role.as_str()).collect();
        assert_eq!(
            roles,
            ["system", "user", "assistant", "user", "assistant", "user"]
        );
        assert_eq!(m[2].content, "answer 0");
        assert_eq!(m[4].content, "answer 1");
        // The child of node 1's prompt is a prefix of the child of node 2's prompt.
        let shorter = build_messages(
            &problem(),
            &tree,
            1,
            &agent,
            ContextMode::Path,
            FeedbackMode::Plain,
        );
        assert_eq!(&m[..shorter.len()], &shorter[..]);
    }

    #[test]
    fn roles_have_their_own_system_prompts() {
        let team = AgentSpec::multi_role("m", 0);
        assert_eq!(system_prompt(&team[0]), SYSTEM_GENERATOR);
        assert_eq!(system_prompt(&team[1]), SYSTEM_REFINER);
        let mut custom = AgentSpec::new("c", 0);
        custom.system_prompt = Some("Be brief.".into());
        assert_eq!(system_prompt(&custom), "Be brief.");
    }

    #[test]
    fn feedback_is_truncated() {
        let mut j = failing();
        j.failure.as_mut().unwrap().input = "x".repeat(5000);
        let text = verdict_text(Some(&j), FeedbackMode::Errors);
        assert!(text.len() < 2000);
        assert!(text.contains("more characters"));
    }
}

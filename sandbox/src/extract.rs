//! Finding the program in a model's answer: the last fenced code block tagged `python`,
//! `py` (or `python3`) or untagged, of at least [`MIN_CODE_CHARS`] characters, that parses as
//! Python. This module finds the fenced blocks; whether a block parses is decided by a real
//! Python parser (the sandbox's harness or [`crate::Sandbox::parses`]).

/// Shortest block, in characters after trimming, that counts as code.
pub const MIN_CODE_CHARS: usize = 20;

/// The fenced blocks of `text` that may hold the program, in order of appearance: tagged
/// `python`, `py`, `python3` or untagged, at least [`MIN_CODE_CHARS`] characters long. A
/// block left open at the end of the text (a truncated answer) is included.
pub fn candidate_blocks(text: &str) -> Vec<String> {
    fenced_blocks(text)
        .into_iter()
        .filter(|b| is_python_tag(&b.tag) && b.code.trim().chars().count() >= MIN_CODE_CHARS)
        .map(|b| b.code)
        .collect()
}

/// The last candidate block for which `parses` says yes.
pub fn last_parsing_block(text: &str, mut parses: impl FnMut(&str) -> bool) -> Option<String> {
    candidate_blocks(text)
        .into_iter()
        .rev()
        .find(|code| parses(code))
}

fn is_python_tag(tag: &str) -> bool {
    matches!(tag, "" | "python" | "py" | "python3")
}

/// One fenced block: its lower-cased language tag and its content.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Block {
    tag: String,
    code: String,
}

struct OpenFence {
    ticks: usize,
    indent: usize,
    tag: String,
    lines: Vec<String>,
}

/// Every fenced block (three or more backticks) in `text`.
fn fenced_blocks(text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<OpenFence> = None;
    for line in text.lines() {
        let body = line.trim_start_matches([' ', '\t']);
        let indent = line.len() - body.len();
        let ticks = body.bytes().take_while(|&b| b == b'`').count();
        match open.as_mut() {
            Some(fence) => {
                if ticks >= fence.ticks && body[ticks..].trim().is_empty() {
                    let fence = open.take().expect("fence is open");
                    blocks.push(Block {
                        tag: fence.tag,
                        code: join_lines(&fence.lines),
                    });
                } else {
                    fence.lines.push(dedent(line, fence.indent).to_string());
                }
            }
            None if ticks >= 3 => {
                let info = body[ticks..].trim();
                if info.contains('`') {
                    continue; // inline code span such as ```x```, not a fence
                }
                let tag = info
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_ascii_lowercase();
                open = Some(OpenFence {
                    ticks,
                    indent,
                    tag,
                    lines: Vec::new(),
                });
            }
            None => {}
        }
    }
    if let Some(fence) = open {
        blocks.push(Block {
            tag: fence.tag,
            code: join_lines(&fence.lines),
        });
    }
    blocks
}

fn join_lines(lines: &[String]) -> String {
    let mut code = lines.join("\n");
    code.push('\n');
    code
}

/// Removes up to `indent` leading spaces or tabs, as a fence's indentation is removed from
/// its content.
fn dedent(line: &str, indent: usize) -> &str {
    let strip = line
        .bytes()
        .take(indent)
        .take_while(|&b| b == b' ' || b == b'\t')
        .count();
    &line[strip..]
}

#[cfg(test)]
mod tests {
    use super::*;

    const LONG: &str = "def add(a, b):\n    return a + b";

    #[test]
    fn takes_python_py_and_untagged_blocks_in_order() {
        let text = format!(
            "intro\n```python\n{LONG}\n```\ntext\n```py\n{LONG} + 1\n```\n```\n{LONG} + 2\n```\n"
        );
        let blocks = candidate_blocks(&text);
        assert_eq!(blocks.len(), 3);
        assert_eq!(blocks[0], format!("{LONG}\n"));
        assert!(blocks[2].contains("+ 2"));
    }

    #[test]
    fn skips_other_languages_and_short_blocks() {
        let text = format!("```cpp\nint main() {{ return 0; }} // long enough\n```\n```python\nx = 1\n```\n```Python\n{LONG}\n```");
        assert_eq!(candidate_blocks(&text), vec![format!("{LONG}\n")]);
    }

    #[test]
    fn last_parsing_block_skips_unparsable_later_blocks() {
        let text = format!("```python\n{LONG}\n```\n```python\ndef broken(:\n    pass pass\n```");
        let chosen = last_parsing_block(&text, |code| !code.contains("broken"));
        assert_eq!(chosen, Some(format!("{LONG}\n")));
        assert_eq!(last_parsing_block("no code here", |_| true), None);
    }

    #[test]
    fn unclosed_final_block_is_a_candidate() {
        let text = format!("```python\n{LONG}\n");
        assert_eq!(candidate_blocks(&text), vec![format!("{LONG}\n")]);
    }

    #[test]
    fn indented_fences_are_dedented_and_longer_fences_nest() {
        let text = "  ```python\n  def f():\n      return 1  # padding\n  ```\n";
        assert_eq!(
            candidate_blocks(text),
            vec!["def f():\n    return 1  # padding\n".to_string()]
        );
        let nested = format!("````\n{LONG}\n```\ninner\n```\n````\n");
        assert_eq!(candidate_blocks(&nested).len(), 1);
        assert!(candidate_blocks(&nested)[0].contains("inner"));
    }
}

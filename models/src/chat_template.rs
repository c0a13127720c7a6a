//! Chat templates: the Jinja template shipped with a model (tokenizer_config.json,
//! chat_template.jinja or GGUF metadata), rendered with `minijinja` the way transformers'
//! `apply_chat_template` renders it (Python string methods through `pycompat`).

use std::path::Path;

use minijinja::{Environment, ErrorKind, Value};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
}

/// Options of one rendering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChatOptions {
    /// Append the header of the assistant's turn.
    pub add_generation_prompt: bool,
    /// Qwen3's thinking switch; templates that don't know it ignore it.
    pub enable_thinking: bool,
}

impl Default for ChatOptions {
    fn default() -> Self {
        Self {
            add_generation_prompt: true,
            enable_thinking: true,
        }
    }
}

/// A compiled chat template with the special tokens it may refer to.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
    bos_token: String,
    eos_token: String,
}

impl ChatTemplate {
    /// Compiles a template; syntax errors are reported now, not at first use.
    pub fn new(source: impl Into<String>, bos_token: &str, eos_token: &str) -> Result<Self> {
        let template = Self {
            source: source.into(),
            bos_token: bos_token.into(),
            eos_token: eos_token.into(),
        };
        template.environment()?;
        Ok(template)
    }

    /// Reads the template of a Hugging Face model directory: `chat_template.jinja` if present,
    /// else `tokenizer_config.json`'s `chat_template` (a string, or a list of named templates
    /// of which `default` is used). `Ok(None)` when the model has none.
    pub fn bos_token(&self) -> &str {
        &self.bos_token
    }

    pub fn eos_token(&self) -> &str {
        &self.eos_token
    }

    pub fn from_model_dir(dir: &Path) -> Result<Option<Self>> {
        let config_path = dir.join("tokenizer_config.json");
        let config: serde_json::Value = if config_path.exists() {
            let text = std::fs::read_to_string(&config_path)
                .map_err(|e| ModelError::io(&config_path, e))?;
            serde_json::from_str(&text).map_err(|source| ModelError::Json {
                path: config_path.clone(),
                source,
            })?
        } else {
            serde_json::Value::Null
        };
        let token = |key: &str| -> String {
            match config.get(key) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(v) => v
                    .get("content")
                    .and_then(|c| c.as_str())
                    .unwrap_or_default()
                    .to_string(),
                None => String::new(),
            }
        };
        let jinja_path = dir.join("chat_template.jinja");
        let source = if jinja_path.exists() {
            Some(std::fs::read_to_string(&jinja_path).map_err(|e| ModelError::io(&jinja_path, e))?)
        } else {
            match config.get("chat_template") {
                Some(serde_json::Value::String(s)) => Some(s.clone()),
                Some(serde_json::Value::Array(items)) => items
                    .iter()
                    .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                    .and_then(|t| t.get("template"))
                    .and_then(|t| t.as_str())
                    .map(str::to_owned),
                _ => None,
            }
        };
        source
            .map(|s| Self::new(s, &token("bos_token"), &token("eos_token")))
            .transpose()
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Renders a conversation to the text the model sees.
    pub fn render(&self, messages: &[ChatMessage], options: ChatOptions) -> Result<String> {
        let env = self.environment()?;
        let template = env.get_template("chat").map_err(template_error)?;
        template
            .render(minijinja::context! {
                messages => messages,
                add_generation_prompt => options.add_generation_prompt,
                enable_thinking => options.enable_thinking,
                bos_token => self.bos_token,
                eos_token => self.eos_token,
                tools => Value::UNDEFINED,
            })
            .map_err(template_error)
    }

    fn environment(&self) -> Result<Environment<'_>> {
        let mut env = Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<Value, minijinja::Error> {
                Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        env.add_function("strftime_now", |_format: String| "".to_string());
        env.add_template("chat", &self.source)
            .map_err(template_error)?;
        Ok(env)
    }
}

fn template_error(e: minijinja::Error) -> ModelError {
    let mut message = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        message.push_str(&format!(": {s}"));
        source = s.source();
    }
    ModelError::ChatTemplate { message }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content | trim }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

    #[test]
    fn renders_with_and_without_generation_prompt() {
        let t = ChatTemplate::new(CHATML, "", "").unwrap();
        let msgs = [ChatMessage::user(" hi ")];
        let with = t.render(&msgs, ChatOptions::default()).unwrap();
        assert_eq!(
            with,
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
        );
        let without = t
            .render(
                &msgs,
                ChatOptions {
                    add_generation_prompt: false,
                    enable_thinking: true,
                },
            )
            .unwrap();
        assert_eq!(without, "<|im_start|>user\nhi<|im_end|>\n");
    }

    #[test]
    fn python_string_methods_work() {
        let t = ChatTemplate::new(
            "{{ messages[0].content.split('x')[-1].lstrip('\\n') }}",
            "",
            "",
        )
        .unwrap();
        assert_eq!(
            t.render(&[ChatMessage::user("axb")], ChatOptions::default())
                .unwrap(),
            "b"
        );
    }

    #[test]
    fn syntax_errors_are_reported_at_load() {
        let err = ChatTemplate::new("{% for %}", "", "").unwrap_err();
        assert!(matches!(err, ModelError::ChatTemplate { .. }), "{err}");
    }

    #[test]
    fn raise_exception_becomes_an_error() {
        let t = ChatTemplate::new("{{ raise_exception('no system role') }}", "", "").unwrap();
        let err = t
            .render(&[], ChatOptions::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("no system role"), "{err}");
    }
}

